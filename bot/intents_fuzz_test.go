package bot

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/internal/errs"
)

// FuzzIntentsBody fuzzes the body of PUT /api/v1/intents as the handler
// reads it: JSON into {"intents": [...]}, then ValidateIntents. Whatever
// comes in, the answer is a user-facing Invalid error or a set that
// Replace can store: names of 1 to 64 characters, trimmed and unique and
// not reserved, known actions, examples and teams of storable text.
func FuzzIntentsBody(f *testing.F) {
	f.Add(`{"intents": [{"name": "refund", "examples": ["I want my money back"], "action": "answer"}]}`)
	f.Add(`{"intents": [{"name": "fraud", "examples": ["my card was stolen"], "action": "escalate", "team": "risk", "priority": 3}]}`)
	f.Add(`{"intents": [{"name": " a "}, {"name": "a"}]}`)
	f.Add(`{"intents": [{"name": "none"}]}`)
	f.Add(`{"intents": [{"name": "x", "examples": ["\u0000"]}]}`)
	f.Add(`{"intents": [{"name": "x", "team": "t\u0000"}]}`)
	f.Add(`{"intents": [{"name": "x", "action": "ignore"}]}`)
	f.Add(`{"intents": [{"name": "x", "priority": 101}]}`)
	f.Add(`{"intents": null}`)
	f.Add(`{"intents": [{"name": 3}]}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, body string) {
		var req struct {
			Intents []Intent `json:"intents"`
		}
		if json.Unmarshal([]byte(body), &req) != nil {
			return // the handler answers 400 before validating
		}
		err := ValidateIntents(req.Intents)
		if err != nil {
			if !errs.Is(err, errs.Invalid) || errs.MessageOf(err) == "" {
				t.Fatalf("error %v: want Invalid with a message", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, in := range req.Intents {
			name := strings.TrimSpace(in.Name)
			if name == "" || utf8.RuneCountInString(name) > 64 || !storable(name) || name == IntentNone || name == IntentOOS || seen[name] {
				t.Fatalf("accepted intent name %q", in.Name)
			}
			seen[name] = true
			if in.Action != "" && in.Action != ActionAnswer && in.Action != ActionEscalate {
				t.Fatalf("accepted action %q", in.Action)
			}
			if !storable(in.Team) || in.Priority < 0 || in.Priority > 100 {
				t.Fatalf("accepted team %q, priority %d", in.Team, in.Priority)
			}
			for _, e := range in.Examples {
				if strings.TrimSpace(e) == "" || !storable(e) || utf8.RuneCountInString(e) > 1000 {
					t.Fatalf("accepted example %q", e)
				}
			}
		}
	})
}

// FuzzIntentsImport fuzzes what `tandem intents import` and POST
// /api/v1/intents/import do before they touch the database: read JSONL
// examples, then check and group them. The result is an Invalid error or
// groups Import can store: each intent named once, in order, with its
// texts once each, all storable, out-of-scope examples left out.
func FuzzIntentsImport(f *testing.F) {
	f.Add("{\"text\": \"where is my parcel\", \"intent\": \"shipping\"}\n{\"text\": \"where is my parcel\", \"intent\": \"shipping\"}\n{\"text\": \"hi\", \"intent\": \"oos\"}")
	f.Add(`{"text": "a", "intent": "none"}`)
	f.Add(`{"text": "a\u0000b", "intent": "x"}`)
	f.Add(`{"text": "a", "intent": "x\u0000"}`)
	f.Add(`{"text": "", "intent": "x"}`)
	f.Add(`{"text": "a", "is_oos": true}`)
	f.Add("\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		ex, err := LoadExamplesJSONL(strings.NewReader(in))
		if err != nil {
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("load: %v, want Invalid", err)
			}
			return
		}
		names, by, err := groupExamples(ex)
		if err != nil {
			if !errs.Is(err, errs.Invalid) || errs.MessageOf(err) == "" {
				t.Fatalf("group: %v, want Invalid with a message", err)
			}
			return
		}
		if len(names) != len(by) {
			t.Fatalf("%d names, %d groups", len(names), len(by))
		}
		total := 0
		for _, name := range names {
			if name == "" || name == IntentOOS || name == IntentNone || !storable(name) || strings.TrimSpace(name) != name {
				t.Fatalf("grouped under %q", name)
			}
			seen := map[string]bool{}
			for _, text := range by[name] {
				if seen[text] || !storable(text) || strings.TrimSpace(text) == "" {
					t.Fatalf("intent %q: text %q twice or not storable", name, text)
				}
				seen[text] = true
				total++
			}
		}
		inScope := 0
		distinct := map[string]bool{}
		for _, e := range ex {
			if n := strings.TrimSpace(e.Intent); n != IntentOOS {
				inScope++
				distinct[n+"\x00"+e.Text] = true
			}
		}
		if total != len(distinct) {
			t.Fatalf("%d texts grouped from %d distinct in-scope examples", total, len(distinct))
		}
	})
}
