package handoff

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Who may work a conversation: the agent it is assigned to or an admin;
// a queued one (a ticket) or one the bot holds, any agent.
func mayHandle(conv *Conversation, actor Actor) error {
	if conv.State == StateAssigned && conv.AssignedTo != actor.ID && !actor.Admin {
		return errs.Errorf(errs.Forbidden, "the conversation is assigned to %s; only they or an admin can do this",
			or(conv.AssigneeName, "another agent"))
	}
	return nil
}

// inTx runs fn on the locked conversation in one transaction and publishes
// what it collected after commit.
func (s *Service) inTx(ctx context.Context, convID string, fn func(tx pgx.Tx, conv *Conversation, out *outbox) error) (*Conversation, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "conversation")
	}
	defer tx.Rollback(ctx)
	conv, err := s.store.lockConversation(ctx, tx, convID)
	if err != nil {
		return nil, err
	}
	out := &outbox{}
	if err := fn(tx, conv, out); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, db.Translate(err, "conversation")
	}
	s.flush(ctx, out)
	return conv, nil
}

// Release hands a conversation back to the bot, with an optional private
// note on why. Returns NotFound, Forbidden (assigned to someone else),
// Conflict (closed, or already with the bot) or Invalid.
func (s *Service) Release(ctx context.Context, actor Actor, convID, note string) (*Conversation, error) {
	note, err := validNote(note, true)
	if err != nil {
		return nil, err
	}
	return s.inTx(ctx, convID, func(tx pgx.Tx, conv *Conversation, out *outbox) error {
		switch conv.State {
		case StateClosed:
			return errs.Errorf(errs.Conflict, "the conversation is closed")
		case StateBot:
			return errs.Errorf(errs.Conflict, "the conversation is already with the bot")
		}
		if err := mayHandle(conv, actor); err != nil {
			return err
		}
		audit, err := s.noteFor(ctx, tx, conv, actor, note, out)
		if err != nil {
			return err
		}
		if err := s.move(ctx, tx, conv, move{to: StateBot, actor: actor, reason: ReasonReleased, audit: audit}, out); err != nil {
			return err
		}
		return s.systemMessage(ctx, tx, conv, notice(conv.Customer.Locale, "released"), "released", out)
	})
}

// Transfer is where a conversation goes: a team's queue, or an agent.
type Transfer struct {
	Team    string `json:"team"`
	AgentID string `json:"agent_id"`
	// Note is private: the receiving agents see it, the customer never.
	Note string `json:"note"`
}

// Transfer moves a conversation to a team's queue (keeping its place: the
// customer's waiting time counts) or straight to an online agent, with an
// optional private note. Returns NotFound, Invalid (no such team or agent,
// or neither or both named), Forbidden (assigned to someone else), Conflict
// (closed, the agent is not online, or already theirs).
func (s *Service) Transfer(ctx context.Context, actor Actor, convID string, t Transfer) (*Conversation, error) {
	t.Team, t.AgentID = strings.TrimSpace(t.Team), strings.TrimSpace(t.AgentID)
	if (t.Team == "") == (t.AgentID == "") {
		return nil, errs.Errorf(errs.Invalid, "name either a team or an agent_id to transfer to")
	}
	note, err := validNote(t.Note, true)
	if err != nil {
		return nil, err
	}
	return s.inTx(ctx, convID, func(tx pgx.Tx, conv *Conversation, out *outbox) error {
		if conv.State == StateClosed {
			return errs.Errorf(errs.Conflict, "the conversation is closed")
		}
		if err := mayHandle(conv, actor); err != nil {
			return err
		}
		audit, err := s.noteFor(ctx, tx, conv, actor, note, out)
		if err != nil {
			return err
		}
		if t.Team != "" {
			team, err := s.store.teamByName(ctx, tx, t.Team)
			if errs.Is(err, errs.NotFound) {
				return errs.Errorf(errs.Invalid, "there is no team named %q", t.Team)
			} else if err != nil {
				return err
			}
			audit["to_team"] = team.Name
			if err := s.move(ctx, tx, conv, move{to: StateQueued, actor: actor, reason: ReasonTransferred,
				team: &team.Name, keepPlace: true, audit: audit}, out); err != nil {
				return err
			}
			return s.systemMessage(ctx, tx, conv, notice(conv.Customer.Locale, "transferred", teamPhrase(conv.Customer.Locale, team.Name)), "transferred", out)
		}
		a, err := s.Agent(ctx, t.AgentID)
		if errs.Is(err, errs.NotFound) {
			return errs.Errorf(errs.Invalid, "there is no agent with id %q", t.AgentID)
		} else if err != nil {
			return err
		}
		if conv.State == StateAssigned && conv.AssignedTo == a.ID {
			return errs.Errorf(errs.Conflict, "the conversation is already assigned to %s", a.Name)
		}
		if a.Status != StatusOnline {
			return errs.Errorf(errs.Conflict, "%s is %s; transfer to their team instead", a.Name, a.Status)
		}
		audit["to_agent"] = a.ID
		return s.assignTo(ctx, tx, conv, actor, a.ID, ReasonTransferred, audit, out)
	})
}

// CloseConversation ends a conversation with a resolution code ("resolved" when
// empty) and asks the customer for a satisfaction score. Returns NotFound,
// Invalid, Forbidden (assigned to someone else) or Conflict (already
// closed).
func (s *Service) CloseConversation(ctx context.Context, actor Actor, convID, resolution string) (*Conversation, error) {
	resolution = strings.TrimSpace(resolution)
	if resolution == "" {
		resolution = "resolved"
	}
	if utf8.RuneCountInString(resolution) > 64 || strings.ContainsAny(resolution, "\n\r\x00") {
		return nil, errs.Errorf(errs.Invalid, "resolution is a short code of at most 64 characters, e.g. resolved")
	}
	return s.inTx(ctx, convID, func(tx pgx.Tx, conv *Conversation, out *outbox) error {
		if conv.State == StateClosed {
			return errs.Errorf(errs.Conflict, "the conversation is already closed")
		}
		if err := mayHandle(conv, actor); err != nil {
			return err
		}
		if err := s.move(ctx, tx, conv, move{to: StateClosed, actor: actor, reason: ReasonClosed, resolution: resolution}, out); err != nil {
			return err
		}
		ev := &Event{Type: EventCSATRequest, ConversationID: conv.ID,
			Data: rawJSON(map[string]any{"min": 1, "max": 5, "agent": conv.AssigneeName})}
		if err := s.store.insertEvent(ctx, tx, ev, actor.ID, actor.Role); err != nil {
			return err
		}
		out.add(*ev)
		return nil
	})
}

// validNote trims a note and checks its size.
func validNote(note string, optional bool) (string, error) {
	note = strings.TrimSpace(note)
	if note == "" && !optional {
		return "", errs.Errorf(errs.Invalid, "text must not be empty")
	}
	if !utf8.ValidString(note) || utf8.RuneCountInString(note) > 4000 {
		return "", errs.Errorf(errs.Invalid, "a note is valid text of at most 4000 characters")
	}
	return note, nil
}

// noteFor stores an optional private note that goes with a transition and
// returns the audit details that mention it.
func (s *Service) noteFor(ctx context.Context, tx pgx.Tx, conv *Conversation, actor Actor, note string, out *outbox) (map[string]any, error) {
	audit := map[string]any{}
	if note == "" {
		return audit, nil
	}
	n, err := s.store.insertNote(ctx, tx, conv.ID, actor.ID, note)
	if err != nil {
		return nil, err
	}
	out.to(StaffTopic(conv.ID), Event{Type: EventNote, ConversationID: conv.ID, Data: rawJSON(n)})
	audit["note"] = note
	audit["note_id"] = n.ID
	return audit, nil
}
