package handoff_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/metrics"
)

// TestCustomerMessagesBatched posts customers' messages from many
// goroutines at once, so that they go in batches: to conversations the bot
// holds (each message starts a bot turn that writes a reply on the
// one-message path), to assigned and closed ones (the first message
// reopens it), each client_msg_id twice at the same moment. Every
// conversation's seqs must run 1..last_seq with no gap or repeat across
// messages and events, each client_msg_id must be stored once, and both
// posts of it must get the same message.
func TestCustomerMessagesBatched(t *testing.T) {
	e := newEnv(t)
	svc := e.service(fastRouting)
	ctx := context.Background()
	agent := e.user("Batch Agent")
	online(t, svc, agent, 100)
	const nConvs, perConv = 12, 20
	ids := make([]string, nConvs)
	for i := range ids {
		c, _, err := svc.CreateConversation(ctx, handoff.Customer{}, false)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
		switch i % 3 {
		case 1:
			must[*handoff.Conversation](t)(svc.Claim(ctx, handoff.AgentActor(agent, false), c.ID))
		case 2:
			must[*handoff.Conversation](t)(svc.Claim(ctx, handoff.AgentActor(agent, false), c.ID))
			must[*handoff.Conversation](t)(svc.CloseConversation(ctx, handoff.AgentActor(agent, false), c.ID, "resolved"))
		}
	}
	type post struct {
		conv, client string
		res          *handoff.PostResult
	}
	statements0, stored0 := batchSizes(t)
	var (
		mu    sync.Mutex
		posts []post
		wg    sync.WaitGroup
	)
	for i := range nConvs * perConv {
		conv, client := ids[i%nConvs], fmt.Sprintf("m%d", i)
		if i%5 == 0 {
			client = "" // no client_msg_id: stored every time
		}
		copies := 2
		if client == "" {
			copies = 1
		}
		for range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := svc.PostMessage(ctx, conv, handoff.Author{Role: handoff.RoleCustomer}, "hello "+client, client)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Turn != nil {
					<-res.Turn
				}
				mu.Lock()
				posts = append(posts, post{conv, client, res})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	statements, stored := batchSizes(t)
	t.Logf("%.0f messages stored by %d batch statements", stored-stored0, statements-statements0)
	if stored-stored0 <= float64(statements-statements0) {
		t.Errorf("no batch held more than one message (%.0f messages, %d statements)", stored-stored0, statements-statements0)
	}
	byClient := map[string]*handoff.PostResult{}
	anonymous := map[string]int{}
	for _, p := range posts {
		if p.res.Message.ConversationID != p.conv || p.res.Message.Role != handoff.RoleCustomer {
			t.Fatalf("post to %s returned %+v", p.conv, p.res.Message)
		}
		if p.client == "" {
			anonymous[p.conv]++
			continue
		}
		if prev := byClient[p.client]; prev != nil {
			if prev.Message.ID != p.res.Message.ID || prev.Message.Seq != p.res.Message.Seq {
				t.Errorf("client_msg_id %s stored twice: %s/%d and %s/%d", p.client, prev.Message.ID, prev.Message.Seq, p.res.Message.ID, p.res.Message.Seq)
			}
			if prev.Created == p.res.Created {
				t.Errorf("client_msg_id %s: both posts say created=%v", p.client, p.res.Created)
			}
		}
		byClient[p.client] = p.res
	}
	for _, id := range ids {
		var last int64
		if err := e.pool.QueryRow(ctx, `SELECT last_seq FROM conversations WHERE id = $1`, id).Scan(&last); err != nil {
			t.Fatal(err)
		}
		rows, err := e.pool.Query(ctx, `SELECT seq FROM messages WHERE conversation_id = $1
			UNION ALL SELECT seq FROM conversation_events WHERE conversation_id = $1 ORDER BY 1`, id)
		if err != nil {
			t.Fatal(err)
		}
		var want int64 = 1
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				t.Fatal(err)
			}
			if seq != want {
				t.Fatalf("conversation %s: seq %d where %d was due", id, seq, want)
			}
			want++
		}
		rows.Close()
		if want-1 != last {
			t.Errorf("conversation %s: seqs end at %d, last_seq is %d", id, want-1, last)
		}
		var stored, clients, anon int
		if err := e.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT client_msg_id), count(*) FILTER (WHERE client_msg_id IS NULL)
			FROM messages WHERE conversation_id = $1 AND role = 'customer'`, id).Scan(&stored, &clients, &anon); err != nil {
			t.Fatal(err)
		}
		if stored != clients+anon || anon != anonymous[id] {
			t.Errorf("conversation %s: %d customer messages, %d distinct client ids, %d without (posted %d without)", id, stored, clients, anon, anonymous[id])
		}
	}
	for i, id := range ids {
		if i%3 == 2 && conv(t, svc, id).State == handoff.StateClosed {
			t.Errorf("closed conversation %s did not reopen", id)
		}
	}
}

// batchSizes reads the batch-size histogram: statements and messages.
func batchSizes(t *testing.T) (statements uint64, messages float64) {
	t.Helper()
	var m dto.Metric
	if err := metrics.MessageBatch.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}
