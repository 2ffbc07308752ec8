package handoff_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/errs"
)

var manual = handoff.Routing{Manual: true, Tick: 50 * time.Millisecond, Heartbeat: 50 * time.Millisecond, Grace: time.Hour, DefaultSLA: time.Hour}

func TestEscalationQueueAndClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(manual)
	ctx := context.Background()
	alex, sam := e.user("Alex Agent"), e.user("Sam Agent")
	if _, err := svc.CreateTeam(ctx, handoff.AgentActor(alex, true), "Billing", handoff.TeamSettings{}); err != nil {
		t.Fatal(err)
	}
	cust := handoff.Customer{Name: "Chris", Email: "chris@example.com", Locale: "en"}
	id := escalate(t, svc, cust, "billing", 2)

	t.Run("Queued", func(t *testing.T) {
		c := conv(t, svc, id)
		if c.State != handoff.StateQueued || c.Team != "Billing" || c.Priority != 2 || c.Reason != "customer_asked" {
			t.Fatalf("conversation %+v: want queued for Billing, priority 2, reason customer_asked", c)
		}
		// Nobody is online: the customer is told so and offered to leave
		// a contact.
		if got := lastText(t, svc, id); !strings.Contains(got, "No one from our Billing team is online") {
			t.Fatalf("customer told %q", got)
		}
		q := must[[]handoff.QueueEntry](t)(svc.Queue(ctx, handoff.QueueFilter{}))
		if len(q) != 1 || q[0].ID != id || q[0].Position != 1 || q[0].Customer.Name != "Chris" ||
			!strings.Contains(q[0].Preview, "I want a person") || q[0].Intent != "talk_to_human" || q[0].SLASeconds != 300 {
			t.Fatalf("queue %+v", q)
		}
		if q := must[[]handoff.QueueEntry](t)(svc.Queue(ctx, handoff.QueueFilter{Team: "support"})); len(q) != 0 {
			t.Fatalf("other team's queue %+v", q)
		}
	})

	t.Run("Claim", func(t *testing.T) {
		c, err := svc.Claim(ctx, handoff.AgentActor(alex, false), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != handoff.StateAssigned || c.AssignedTo != alex || c.AssigneeName != "Alex Agent" {
			t.Fatalf("claimed %+v", c)
		}
		if got := lastText(t, svc, id); got != "Alex Agent has joined the conversation." {
			t.Fatalf("customer told %q", got)
		}
		_, err = svc.Claim(ctx, handoff.AgentActor(sam, false), id)
		wantCode(t, err, errs.Conflict)
		// Claiming one's own again changes nothing.
		if _, err := svc.Claim(ctx, handoff.AgentActor(alex, false), id); err != nil {
			t.Fatal(err)
		}
		if a := must[*handoff.Agent](t)(svc.Agent(ctx, alex)); a.OpenChats != 1 {
			t.Fatalf("open chats %d, want 1", a.OpenChats)
		}
		if q := must[[]handoff.QueueEntry](t)(svc.Queue(ctx, handoff.QueueFilter{})); len(q) != 0 {
			t.Fatalf("queue after claim %+v", q)
		}
		_, err = svc.Claim(ctx, handoff.AgentActor(sam, false), "7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42")
		wantCode(t, err, errs.NotFound)
	})

	t.Run("OnlyTheAssigneeWorksIt", func(t *testing.T) {
		_, err := svc.PostMessage(ctx, id, handoff.Author{Role: handoff.RoleAgent, ID: sam}, "Hi, Sam here", "")
		wantCode(t, err, errs.Conflict)
		_, err = svc.CloseConversation(ctx, handoff.AgentActor(sam, false), id, "")
		wantCode(t, err, errs.Forbidden)
		_, err = svc.Release(ctx, handoff.AgentActor(sam, false), id, "")
		wantCode(t, err, errs.Forbidden)
		_, err = svc.Transfer(ctx, handoff.AgentActor(sam, false), id, handoff.Transfer{Team: "Billing"})
		wantCode(t, err, errs.Forbidden)
	})

	t.Run("TranscriptAndNotes", func(t *testing.T) {
		if _, err := svc.PostMessage(ctx, id, handoff.Author{Role: handoff.RoleAgent, ID: alex}, "Hi Chris, Alex here.", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddNote(ctx, handoff.AgentActor(alex, false), id, "VIP: refund quickly"); err != nil {
			t.Fatal(err)
		}
		tr := must[*handoff.Transcript](t)(svc.Transcript(ctx, id))
		if tr.Handoff == nil || tr.Handoff.Reason != "customer_asked" || tr.Handoff.Intent != "talk_to_human" ||
			tr.Handoff.Confidence != 0.93 || tr.Handoff.LastAnswer == "" || len(tr.Handoff.Sources) != 1 ||
			tr.Handoff.Summary == "" || tr.Handoff.Team != "Billing" || tr.Handoff.Customer.Email != "chris@example.com" {
			t.Fatalf("handoff packet %+v", tr.Handoff)
		}
		if len(tr.Notes) != 1 || tr.Notes[0].Text != "VIP: refund quickly" || tr.Notes[0].AuthorName != "Alex Agent" {
			t.Fatalf("notes %+v", tr.Notes)
		}
		// Messages and events share one gapless seq.
		seqs := map[int64]bool{}
		for _, m := range tr.Messages {
			seqs[m.Seq] = true
		}
		var states []string
		for _, ev := range tr.Events {
			if seqs[ev.Seq] {
				t.Fatalf("seq %d used twice", ev.Seq)
			}
			seqs[ev.Seq] = true
			if ev.Type == handoff.EventState {
				states = append(states, string(ev.State)+"/"+ev.ActorRole)
			}
		}
		for i := int64(1); i <= tr.Conversation.LastSeq; i++ {
			if !seqs[i] {
				t.Fatalf("seq %d missing from the transcript", i)
			}
		}
		if got := strings.Join(states, " "); got != "queued/bot assigned/agent" {
			t.Fatalf("transitions %q", got)
		}
		// The customer's replay has no note.
		evs := must[[]handoff.Event](t)(svc.Replay(ctx, id, 0, 1000))
		raw, _ := json.Marshal(evs)
		if strings.Contains(string(raw), "VIP") {
			t.Fatalf("the customer's replay shows a private note: %s", raw)
		}
		if strings.Contains(string(raw), "I can help with returns") {
			t.Fatalf("the customer's replay shows the handoff packet: %s", raw)
		}
	})

	t.Run("CloseAndCSAT", func(t *testing.T) {
		_, err := svc.SubmitCSAT(ctx, id, 5, "")
		wantCode(t, err, errs.Conflict) // not closed yet
		c, err := svc.CloseConversation(ctx, handoff.AgentActor(alex, false), id, "refunded")
		if err != nil {
			t.Fatal(err)
		}
		if c.State != handoff.StateClosed || c.Resolution != "refunded" || !c.CSATPending {
			t.Fatalf("closed %+v", c)
		}
		if a := must[*handoff.Agent](t)(svc.Agent(ctx, alex)); a.OpenChats != 0 {
			t.Fatalf("open chats %d after close, want 0", a.OpenChats)
		}
		evs := must[[]handoff.Event](t)(svc.Replay(ctx, id, c.LastSeq-1, 10))
		if len(evs) == 0 || evs[len(evs)-1].Type != handoff.EventCSATRequest {
			t.Fatalf("last events %+v: want a csat.request", evs)
		}
		_, err = svc.SubmitCSAT(ctx, id, 6, "")
		wantCode(t, err, errs.Invalid)
		if _, err := svc.SubmitCSAT(ctx, id, 4, "quick and kind"); err != nil {
			t.Fatal(err)
		}
		_, err = svc.SubmitCSAT(ctx, id, 5, "")
		wantCode(t, err, errs.Conflict) // once per close
		tr := must[*handoff.Transcript](t)(svc.Transcript(ctx, id))
		if len(tr.CSAT) != 1 || tr.CSAT[0].Score != 4 || tr.CSAT[0].AgentID != alex {
			t.Fatalf("csat %+v", tr.CSAT)
		}
		_, err = svc.CloseConversation(ctx, handoff.AgentActor(alex, false), id, "")
		wantCode(t, err, errs.Conflict)
		_, err = svc.PostMessage(ctx, id, handoff.Author{Role: handoff.RoleAgent, ID: alex}, "one more thing", "")
		wantCode(t, err, errs.Conflict)
	})

	t.Run("ReopenWhenTheCustomerWrites", func(t *testing.T) {
		res, err := svc.PostMessage(ctx, id, handoff.Author{Role: handoff.RoleCustomer}, "Actually, one more question", "")
		if err != nil {
			t.Fatal(err)
		}
		<-res.Turn
		c := conv(t, svc, id)
		if c.State != handoff.StateBot || c.AssignedTo != "" || c.CSATPending {
			t.Fatalf("reopened %+v: want the bot's, unassigned", c)
		}
		tr := must[*handoff.Transcript](t)(svc.Transcript(ctx, id))
		last := tr.Events[len(tr.Events)-1]
		for _, ev := range tr.Events {
			if ev.Type == handoff.EventState && ev.State == handoff.StateBot {
				last = ev
			}
		}
		var d struct{ Reason, From string }
		_ = json.Unmarshal(last.Data, &d)
		if last.ActorRole != handoff.RoleCustomer || d.Reason != handoff.ReasonCustomerWrote || d.From != "closed" {
			t.Fatalf("reopen event %+v", last)
		}
	})

	t.Run("Audit", func(t *testing.T) {
		recs := must[[]handoff.AuditRecord](t)(svc.Audit(ctx, handoff.AuditFilter{SubjectID: id}))
		var actions []string
		for i := len(recs) - 1; i >= 0; i-- {
			actions = append(actions, recs[i].Action)
		}
		want := "conversation.queued conversation.assigned conversation.note conversation.closed conversation.csat conversation.bot"
		if got := strings.Join(actions, " "); got != want {
			t.Fatalf("audit %q, want %q", got, want)
		}
	})
}

func TestTransferAndRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(manual)
	ctx := context.Background()
	alex, sam, ada := e.user("Alex Agent"), e.user("Sam Agent"), e.user("Ada Admin", "admin")
	must[*handoff.Team](t)(svc.CreateTeam(ctx, handoff.AgentActor(ada, true), "Billing", handoff.TeamSettings{}))
	must[*handoff.Team](t)(svc.CreateTeam(ctx, handoff.AgentActor(ada, true), "Fraud", handoff.TeamSettings{}))

	id := escalate(t, svc, handoff.Customer{Name: "Kim"}, "billing", 0)
	queuedAt := *conv(t, svc, id).QueuedAt
	must[*handoff.Conversation](t)(svc.Claim(ctx, handoff.AgentActor(alex, false), id))

	t.Run("ToATeamKeepsThePlace", func(t *testing.T) {
		c, err := svc.Transfer(ctx, handoff.AgentActor(alex, false), id, handoff.Transfer{Team: "fraud", Note: "card stolen, see order 42"})
		if err != nil {
			t.Fatal(err)
		}
		if c.State != handoff.StateQueued || c.Team != "Fraud" || !c.QueuedAt.Equal(queuedAt) {
			t.Fatalf("transferred %+v; want queued for Fraud since %v", c, queuedAt)
		}
		if a := must[*handoff.Agent](t)(svc.Agent(ctx, alex)); a.OpenChats != 0 {
			t.Fatalf("alex keeps %d chats", a.OpenChats)
		}
		if got := lastText(t, svc, id); !strings.Contains(got, "transferred to our Fraud team") {
			t.Fatalf("customer told %q", got)
		}
		tr := must[*handoff.Transcript](t)(svc.Transcript(ctx, id))
		if len(tr.Notes) != 1 || !strings.Contains(tr.Notes[0].Text, "order 42") {
			t.Fatalf("transfer note %+v", tr.Notes)
		}
	})

	t.Run("ToAnAgent", func(t *testing.T) {
		_, err := svc.Transfer(ctx, handoff.AgentActor(alex, false), id, handoff.Transfer{AgentID: sam})
		wantCode(t, err, errs.Conflict) // sam is offline
		online(t, svc, sam, 3)
		_, err = svc.Transfer(ctx, handoff.AgentActor(alex, false), id, handoff.Transfer{})
		wantCode(t, err, errs.Invalid)
		_, err = svc.Transfer(ctx, handoff.AgentActor(alex, false), id, handoff.Transfer{Team: "Nope"})
		wantCode(t, err, errs.Invalid)
		c, err := svc.Transfer(ctx, handoff.AgentActor(alex, false), id, handoff.Transfer{AgentID: sam, Note: "over to you"})
		if err != nil {
			t.Fatal(err)
		}
		if c.State != handoff.StateAssigned || c.AssignedTo != sam {
			t.Fatalf("transferred %+v, want assigned to sam", c)
		}
		// An admin may move someone else's conversation.
		c, err = svc.Transfer(ctx, handoff.AgentActor(ada, true), id, handoff.Transfer{Team: "Billing"})
		if err != nil {
			t.Fatal(err)
		}
		if c.State != handoff.StateQueued || c.Team != "Billing" {
			t.Fatalf("admin transfer %+v", c)
		}
		if a := must[*handoff.Agent](t)(svc.Agent(ctx, sam)); a.OpenChats != 0 {
			t.Fatalf("sam keeps %d chats", a.OpenChats)
		}
	})

	t.Run("Release", func(t *testing.T) {
		must[*handoff.Conversation](t)(svc.Claim(ctx, handoff.AgentActor(alex, false), id))
		c, err := svc.Release(ctx, handoff.AgentActor(alex, false), id, "just wanted opening hours")
		if err != nil {
			t.Fatal(err)
		}
		if c.State != handoff.StateBot || c.AssignedTo != "" {
			t.Fatalf("released %+v", c)
		}
		_, err = svc.Release(ctx, handoff.AgentActor(alex, false), id, "")
		wantCode(t, err, errs.Conflict)
		if got := lastText(t, svc, id); !strings.Contains(got, "back with our automated assistant") {
			t.Fatalf("customer told %q", got)
		}
		// The bot answers again.
		res, err := svc.PostMessage(ctx, id, handoff.Author{Role: handoff.RoleCustomer}, "When do you open?", "")
		if err != nil {
			t.Fatal(err)
		}
		<-res.Turn
		if got := lastText(t, svc, id); got != "A bot answer." {
			t.Fatalf("after release the customer got %q", got)
		}
	})

	t.Run("AgentWritingTakesOver", func(t *testing.T) {
		// An agent writing in the bot's conversation takes it, without a
		// "joined" message: their own message introduces them.
		before := len(messages(t, svc, id))
		if _, err := svc.PostMessage(ctx, id, handoff.Author{Role: handoff.RoleAgent, ID: sam}, "Sam here, I can help.", ""); err != nil {
			t.Fatal(err)
		}
		c := conv(t, svc, id)
		if c.State != handoff.StateAssigned || c.AssignedTo != sam {
			t.Fatalf("after an agent wrote: %+v", c)
		}
		if n := len(messages(t, svc, id)); n != before+1 {
			t.Fatalf("%d new messages, want 1", n-before)
		}
	})
}

func TestAutoAssignmentCapacityAndPriority(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(manual) // rounds run by hand, to check each step
	ctx := context.Background()
	ada := e.user("Ada Admin", "admin")
	must[*handoff.Team](t)(svc.CreateTeam(ctx, handoff.AgentActor(ada, true), "Billing", handoff.TeamSettings{}))
	b1, b2, other := e.user("Bea Billing"), e.user("Bo Billing"), e.user("Olly Other")
	for _, id := range []string{b1, b2} {
		if err := svc.AddTeamMember(ctx, handoff.AgentActor(ada, true), "billing", id); err != nil {
			t.Fatal(err)
		}
	}
	// Queued while nobody is online: low, high, low, high priority. Each
	// "added" queue event tells the entry's position when it joined: behind
	// the higher priorities and those of its own queued before it.
	agents := svc.Subscribe(handoff.TopicAgents, 64)
	defer agents.Close()
	var ids []string
	for i, p := range []int{0, 5, 0, 5, 0} {
		ids = append(ids, escalate(t, svc, handoff.Customer{}, "Billing", p))
		time.Sleep(2 * time.Millisecond) // distinct queued_at
		want := []int{1, 1, 3, 2, 5}[i]
		var e handoff.QueueEntry
		if err := json.Unmarshal(nextQueueEvent(t, agents, "added"), &e); err != nil || e.ID != ids[i] || e.Position != want {
			t.Fatalf("escalation %d (priority %d): added %s at %d (%v), want %s at %d", i, p, e.ID, e.Position, err, ids[i], want)
		}
	}
	// A queued customer's new message updates the entry's preview; its
	// place did not change, and the event leaves the position out.
	if _, err := svc.PostMessage(ctx, ids[2], handoff.Author{Role: handoff.RoleCustomer}, "Still waiting for the invoice", ""); err != nil {
		t.Fatal(err)
	}
	raw := nextQueueEvent(t, agents, "updated")
	var updated handoff.QueueEntry
	if err := json.Unmarshal(raw, &updated); err != nil || updated.ID != ids[2] || updated.Preview != "Still waiting for the invoice" ||
		strings.Contains(string(raw), `"position"`) {
		t.Fatalf("updated entry %s (%v), want %s with the new preview and no position", raw, err, ids[2])
	}
	q := must[[]handoff.QueueEntry](t)(svc.Queue(ctx, handoff.QueueFilter{}))
	order := []string{ids[1], ids[3], ids[0], ids[2], ids[4]}
	for i, e := range q {
		if e.ID != order[i] || e.Position != i+1 {
			t.Fatalf("queue position %d is %s (pos %d), want %s", i+1, e.ID, e.Position, order[i])
		}
	}

	// Someone outside the team does not get Billing's chats.
	online(t, svc, other, 5)
	if n := must[int](t)(svc.AssignQueued(ctx)); n != 0 {
		t.Fatalf("assigned %d to an agent outside the team", n)
	}
	// b1 (capacity 1) and b2 (capacity 2): three chats go, by priority
	// then waiting time; the fewest open chats gets each next one.
	online(t, svc, b1, 1)
	online(t, svc, b2, 2)
	if n := must[int](t)(svc.AssignQueued(ctx)); n != 3 {
		t.Fatalf("assigned %d, want 3 (the capacity)", n)
	}
	for _, id := range order[:3] {
		if c := conv(t, svc, id); c.State != handoff.StateAssigned {
			t.Fatalf("%s is %s, want assigned (it had priority)", id, c.State)
		}
	}
	for _, id := range order[3:] {
		if c := conv(t, svc, id); c.State != handoff.StateQueued {
			t.Fatalf("%s is %s, want still queued", id, c.State)
		}
	}
	for id, want := range map[string]int{b1: 1, b2: 2} {
		if a := must[*handoff.Agent](t)(svc.Agent(ctx, id)); a.OpenChats != want {
			t.Fatalf("agent %s has %d chats, want %d", a.Name, a.OpenChats, want)
		}
	}
	// Each agent got chats in turn: fewest open chats first.
	c0, c1 := conv(t, svc, order[0]), conv(t, svc, order[1])
	if c0.AssignedTo == c1.AssignedTo {
		t.Fatalf("the first two chats both went to %s; want one each", c0.AssigneeName)
	}
	if got := lastText(t, svc, order[0]); !strings.HasSuffix(got, "has joined the conversation.") {
		t.Fatalf("customer told %q", got)
	}

	// Closing frees capacity; the next round takes the next in line.
	holder := conv(t, svc, order[0]).AssignedTo
	must[*handoff.Conversation](t)(svc.CloseConversation(ctx, handoff.AgentActor(holder, false), order[0], ""))
	if n := must[int](t)(svc.AssignQueued(ctx)); n != 1 {
		t.Fatalf("assigned %d after a close, want 1", n)
	}
	if c := conv(t, svc, order[3]); c.State != handoff.StateAssigned || c.AssignedTo != holder {
		t.Fatalf("next in line %+v, want assigned to %s", c, holder)
	}
	// Going away with unanswered chats sends them back with their place.
	queuedAt := *conv(t, svc, order[3]).QueuedAt
	if _, err := svc.SetStatus(ctx, handoff.AgentActor(holder, false), holder, handoff.StatusAway, nil); err != nil {
		t.Fatal(err)
	}
	if c := conv(t, svc, order[3]); c.State != handoff.StateQueued || !c.QueuedAt.Equal(queuedAt) {
		t.Fatalf("after away: %+v, want queued since %v", c, queuedAt)
	}
	if a := must[*handoff.Agent](t)(svc.Agent(ctx, holder)); a.OpenChats != 0 || a.Status != handoff.StatusAway {
		t.Fatalf("away agent %+v", a)
	}

	// Unknown teams and no team: anyone may take them.
	loose := escalate(t, svc, handoff.Customer{}, "nonexistent", 0)
	if c := conv(t, svc, loose); c.Team != "" {
		t.Fatalf("unknown team kept: %+v", c)
	}
	must[int](t)(svc.AssignQueued(ctx))
	if c := conv(t, svc, loose); c.State != handoff.StateAssigned {
		t.Fatalf("no-team conversation %+v, want assigned", c)
	}
}

func TestAutomaticAssignmentTriggers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(fastRouting)
	ctx := context.Background()
	alex := e.user("Alex Agent")
	online(t, svc, alex, 1)
	// On escalation: straight away, and the customer is told.
	first := escalate(t, svc, handoff.Customer{}, "", 0)
	eventually(t, "the escalation is assigned", func() bool { return conv(t, svc, first).State == handoff.StateAssigned })
	msgs := messages(t, svc, first)
	if !strings.Contains(msgs[len(msgs)-2].Text, "Connecting you") || msgs[len(msgs)-1].Text != "Alex Agent has joined the conversation." {
		t.Fatalf("customer told %q then %q", msgs[len(msgs)-2].Text, msgs[len(msgs)-1].Text)
	}
	// Full: the next waits and is told its place; closing the first frees
	// capacity and assigns it.
	second := escalate(t, svc, handoff.Customer{}, "", 0)
	if got := lastText(t, svc, second); !strings.Contains(got, "number 1 in the queue") {
		t.Fatalf("customer told %q", got)
	}
	time.Sleep(100 * time.Millisecond)
	if c := conv(t, svc, second); c.State != handoff.StateQueued {
		t.Fatalf("over capacity: %+v", c)
	}
	must[*handoff.Conversation](t)(svc.CloseConversation(ctx, handoff.AgentActor(alex, false), first, ""))
	eventually(t, "the second is assigned once capacity frees", func() bool { return conv(t, svc, second).State == handoff.StateAssigned })
	// The wait estimate comes from recent waits once there are three.
	must[*handoff.Conversation](t)(svc.CloseConversation(ctx, handoff.AgentActor(alex, false), second, ""))
	third := escalate(t, svc, handoff.Customer{}, "", 0)
	eventually(t, "the third is assigned", func() bool { return conv(t, svc, third).State == handoff.StateAssigned })
	must[*handoff.Conversation](t)(svc.CloseConversation(ctx, handoff.AgentActor(alex, false), third, ""))
	if _, err := svc.SetStatus(ctx, handoff.AgentActor(alex, false), alex, handoff.StatusOnline, new(0)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		escalate(t, svc, handoff.Customer{}, "", 0)
	}
	if got := lastText(t, svc, escalate(t, svc, handoff.Customer{}, "", 0)); !strings.Contains(got, "number 4 in the queue") || !strings.Contains(got, "estimated wait") {
		t.Fatalf("customer told %q", got)
	}
}

func TestOfflineAndOutOfHours(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(fastRouting)
	ctx := context.Background()
	ada := e.user("Ada Admin", "admin")
	// A team open only on a day that is not today, in its time zone.
	tz := "Asia/Tokyo"
	loc, _ := time.LoadLocation(tz)
	other := []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}[(time.Now().In(loc).Weekday()+3)%7]
	must[*handoff.Team](t)(svc.CreateTeam(ctx, handoff.AgentActor(ada, true), "Night", handoff.TeamSettings{Timezone: &tz,
		Hours: map[string]string{other: "10:00-11:00"}}))
	must[*handoff.Team](t)(svc.CreateTeam(ctx, handoff.AgentActor(ada, true), "Day", handoff.TeamSettings{}))

	id := escalate(t, svc, handoff.Customer{Locale: "en"}, "Night", 0)
	if got := lastText(t, svc, id); !strings.Contains(got, "Our Night team is away right now and back") || !strings.Contains(got, "e-mail address") {
		t.Fatalf("out of hours, customer told %q", got)
	}
	tr := must[*handoff.Transcript](t)(svc.Transcript(ctx, id))
	var queued struct {
		Queue handoff.QueueInfo `json:"queue"`
	}
	for _, ev := range tr.Events {
		if ev.State == handoff.StateQueued {
			_ = json.Unmarshal(ev.Data, &queued)
		}
	}
	if queued.Queue.Status != "out_of_hours" || !queued.Queue.OfferContact || queued.Queue.OpensAt == nil {
		t.Fatalf("state event's queue %+v", queued.Queue)
	}

	id2 := escalate(t, svc, handoff.Customer{Locale: "zh-CN"}, "Day", 0)
	if got := lastText(t, svc, id2); !strings.Contains(got, "Day团队目前没有在线的工作人员") {
		t.Fatalf("offline, customer told %q", got)
	}
	// The customer leaves a contact; it stays queued as a ticket, and a
	// member who comes online later gets it.
	must[*handoff.PostResult](t)(svc.PostMessage(ctx, id2, handoff.Author{Role: handoff.RoleCustomer}, "kim@example.com", ""))
	time.Sleep(100 * time.Millisecond)
	if c := conv(t, svc, id2); c.State != handoff.StateQueued {
		t.Fatalf("ticket %+v", c)
	}
	q := must[[]handoff.QueueEntry](t)(svc.Queue(ctx, handoff.QueueFilter{Team: "day"}))
	if len(q) != 1 || q[0].Preview != "kim@example.com" {
		t.Fatalf("queue %+v", q)
	}
	dana := e.user("Dana Day")
	if err := svc.AddTeamMember(ctx, handoff.AgentActor(ada, true), "Day", dana); err != nil {
		t.Fatal(err)
	}
	online(t, svc, dana, 3)
	eventually(t, "the ticket is assigned", func() bool { return conv(t, svc, id2).AssignedTo == dana })
}

func TestSLAFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(fastRouting)
	ctx := context.Background()
	ada := e.user("Ada Admin", "admin")
	sla := 1
	must[*handoff.Team](t)(svc.CreateTeam(ctx, handoff.AgentActor(ada, true), "Billing", handoff.TeamSettings{SLASeconds: &sla}))
	team := svc.Subscribe(handoff.TeamTopic("Billing"), 16)
	defer team.Close()
	admins := svc.Subscribe(handoff.TopicAdmins, 16)
	defer admins.Close()
	id := escalate(t, svc, handoff.Customer{}, "billing", 0)
	for _, sub := range []*handoff.Subscription{team, admins} {
		select {
		case ev := <-sub.C:
			if ev.Type != handoff.EventSLA || ev.ConversationID != id {
				t.Fatalf("event %+v, want sla for %s", ev, id)
			}
		case <-time.After(wait):
			t.Fatal("no SLA flag")
		}
	}
	q := must[[]handoff.QueueEntry](t)(svc.Queue(ctx, handoff.QueueFilter{}))
	if len(q) != 1 || !q[0].SLABreached {
		t.Fatalf("queue %+v, want the entry flagged", q)
	}
	// Flagged once only.
	select {
	case ev := <-team.C:
		t.Fatalf("second flag %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestPresenceGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Heartbeats far inside the grace period, so a busy machine does not
	// make a live socket look dead.
	r := handoff.Routing{Tick: 50 * time.Millisecond, Grace: 800 * time.Millisecond, Heartbeat: 100 * time.Millisecond, DefaultSLA: time.Hour}
	svc := e.service(r)
	ctx := context.Background()
	alex := e.user("Alex Agent")
	sock, err := svc.AgentConnected(ctx, alex)
	if err != nil {
		t.Fatal(err)
	}
	online(t, svc, alex, 2)
	answered := escalate(t, svc, handoff.Customer{}, "", 0)
	unanswered := escalate(t, svc, handoff.Customer{}, "", 0)
	eventually(t, "both assigned", func() bool {
		return conv(t, svc, answered).State == handoff.StateAssigned && conv(t, svc, unanswered).State == handoff.StateAssigned
	})
	queuedAt := *conv(t, svc, unanswered).QueuedAt
	must[*handoff.PostResult](t)(svc.PostMessage(ctx, answered, handoff.Author{Role: handoff.RoleAgent, ID: alex}, "On it.", ""))

	// The socket lives through heartbeats well past the grace period.
	time.Sleep(3 * r.Grace)
	if a := must[*handoff.Agent](t)(svc.Agent(ctx, alex)); a.Status != handoff.StatusOnline || !a.Connected {
		t.Fatalf("with a live socket: %+v", a)
	}
	// A reconnect within the grace period changes nothing.
	svc.AgentDisconnected(sock)
	time.Sleep(r.Grace / 3)
	sock, err = svc.AgentConnected(ctx, alex)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * r.Grace)
	if a := must[*handoff.Agent](t)(svc.Agent(ctx, alex)); a.Status != handoff.StatusOnline {
		t.Fatalf("after a quick reconnect: %+v", a)
	}
	// Gone for good: away, and the unanswered chat goes back in its place.
	svc.AgentDisconnected(sock)
	eventually(t, "the agent becomes away", func() bool {
		return must[*handoff.Agent](t)(svc.Agent(ctx, alex)).Status == handoff.StatusAway
	})
	eventually(t, "the unanswered chat is queued", func() bool { return conv(t, svc, unanswered).State == handoff.StateQueued })
	if c := conv(t, svc, unanswered); !c.QueuedAt.Equal(queuedAt) {
		t.Fatalf("queued_at %v, want %v kept", c.QueuedAt, queuedAt)
	}
	if got := lastText(t, svc, unanswered); !strings.Contains(got, "had to step away") {
		t.Fatalf("customer told %q", got)
	}
	if c := conv(t, svc, answered); c.State != handoff.StateAssigned || c.AssignedTo != alex {
		t.Fatalf("answered chat %+v, want kept", c)
	}
}

func TestTeamsAndCannedReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(manual)
	ctx := context.Background()
	ada, bea, olly := e.user("Ada Admin", "admin"), e.user("Bea Billing"), e.user("Olly Other")
	admin := handoff.AgentActor(ada, true)
	_, err := svc.CreateTeam(ctx, admin, "  ", handoff.TeamSettings{})
	wantCode(t, err, errs.Invalid)
	bad := "Nowhere/Else"
	_, err = svc.CreateTeam(ctx, admin, "Billing", handoff.TeamSettings{Timezone: &bad})
	wantCode(t, err, errs.Invalid)
	must[*handoff.Team](t)(svc.CreateTeam(ctx, admin, "Billing", handoff.TeamSettings{}))
	_, err = svc.CreateTeam(ctx, admin, "billing", handoff.TeamSettings{})
	wantCode(t, err, errs.Conflict)
	created, err := svc.JoinTeam(ctx, bea, "BILLING")
	if err != nil || created {
		t.Fatalf("join existing: created %v, %v", created, err)
	}
	if created, err := svc.JoinTeam(ctx, olly, "Returns"); err != nil || !created {
		t.Fatalf("join new: created %v, %v", created, err)
	}
	tz := "Europe/Paris"
	tm := must[*handoff.Team](t)(svc.UpdateTeam(ctx, admin, "billing", handoff.TeamSettings{Timezone: &tz, Hours: map[string]string{"mon": "09:00-17:00"}}))
	if tm.Timezone != tz || tm.Hours["mon"] != "09:00-17:00" || len(tm.Members) != 1 || tm.Members[0].ID != bea {
		t.Fatalf("team %+v", tm)
	}
	if a := must[*handoff.Agent](t)(svc.Agent(ctx, bea)); len(a.Teams) != 1 || a.Teams[0] != "Billing" || a.Capacity != handoff.DefaultCapacity || a.Status != handoff.StatusOffline {
		t.Fatalf("agent %+v", a)
	}

	must[*handoff.CannedReply](t)(svc.CreateCannedReply(ctx, admin, handoff.CannedReply{Title: "Hello", Text: "Hello, how can I help?"}))
	refund := must[*handoff.CannedReply](t)(svc.CreateCannedReply(ctx, admin, handoff.CannedReply{Team: "billing", Title: "Refund", Text: "Your refund is on its way."}))
	must[*handoff.CannedReply](t)(svc.CreateCannedReply(ctx, admin, handoff.CannedReply{Team: "Returns", Title: "Label", Text: "Here is your label."}))
	_, err = svc.CreateCannedReply(ctx, admin, handoff.CannedReply{Team: "Nope", Title: "x", Text: "y"})
	wantCode(t, err, errs.Invalid)
	titles := func(rs []handoff.CannedReply) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Title)
		}
		return strings.Join(out, ",")
	}
	if got := titles(must[[]handoff.CannedReply](t)(svc.CannedReplies(ctx, bea, false))); got != "Hello,Refund" {
		t.Fatalf("bea sees %q", got)
	}
	if got := titles(must[[]handoff.CannedReply](t)(svc.CannedReplies(ctx, ada, true))); got != "Hello,Refund,Label" {
		t.Fatalf("admin sees %q", got)
	}
	upd := must[*handoff.CannedReply](t)(svc.UpdateCannedReply(ctx, admin, refund.ID, handoff.CannedReply{Title: "Refund sent", Text: "Sent today."}))
	if upd.Team != "" || upd.Title != "Refund sent" {
		t.Fatalf("updated %+v", upd)
	}
	if err := svc.DeleteCannedReply(ctx, admin, refund.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, svc.DeleteCannedReply(ctx, admin, refund.ID), errs.NotFound)
}

func TestSuggestedReply(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(manual)
	ctx := context.Background()
	c, _, err := svc.CreateConversation(ctx, handoff.Customer{}, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Suggest(ctx, c.ID)
	wantCode(t, err, errs.Invalid) // nothing to answer yet
	res := must[*handoff.PostResult](t)(svc.PostMessage(ctx, c.ID, handoff.Author{Role: handoff.RoleCustomer}, "How do returns work?", ""))
	<-res.Turn
	before := len(messages(t, svc, c.ID))
	sg := must[*handoff.Suggestion](t)(svc.Suggest(ctx, c.ID))
	if sg.Text != "A bot answer." || sg.Decision != "answer" {
		t.Fatalf("suggestion %+v", sg)
	}
	if n := len(messages(t, svc, c.ID)); n != before {
		t.Fatalf("a suggestion stored %d messages", n-before)
	}
	// When the bot would escalate, its last attempted answer is the draft.
	id := escalate(t, svc, handoff.Customer{}, "", 0)
	sg = must[*handoff.Suggestion](t)(svc.Suggest(ctx, id))
	if sg.Decision != "escalate" || sg.Text != "I can help with returns." || len(sg.Sources) != 1 {
		t.Fatalf("suggestion %+v", sg)
	}
	if c := conv(t, svc, id); c.State != handoff.StateQueued {
		t.Fatalf("a suggestion moved the conversation: %+v", c)
	}
}

// nextQueueEvent waits for the next queue event of the given change on sub
// and returns its entry as sent.
func nextQueueEvent(t *testing.T, sub *handoff.Subscription, change string) json.RawMessage {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev := <-sub.C:
			var d struct {
				Change string
				Entry  json.RawMessage
			}
			if ev.Type == handoff.EventQueue && json.Unmarshal(ev.Data, &d) == nil && d.Change == change {
				return d.Entry
			}
		case <-timeout:
			t.Fatalf("no %s queue event", change)
		}
	}
}
