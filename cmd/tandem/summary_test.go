package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

// TestMetricsSummary checks GET /api/v1/metrics/summary over HTTP: admins
// only, JSON and CSV, bad parameters. The figures themselves are tested in
// package kpi on a known set of conversations.
func TestMetricsSummary(t *testing.T) {
	t.Parallel()
	s := startServer(t, dbtest.New(t))
	staff(t, s)
	token := func(email string) string {
		var out struct{ Token string }
		s.login(t, email, staffPassword).expect(t, http.StatusOK).decode(t, &out)
		return out.Token
	}
	admin, agent := token("admin@example.com"), token("agent@example.com")

	c := s.createConversation(t)
	s.postWait(t, c, "hello")
	day := time.Now().UTC().Format("2006-01-02")
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
	path := "/api/v1/metrics/summary?from=" + day + "&to=" + tomorrow

	t.Run("OK", func(t *testing.T) {
		var sum struct {
			Conversations int `json:"conversations"`
			PerDay        []struct {
				Date          string `json:"date"`
				Conversations int    `json:"conversations"`
			} `json:"per_day"`
			CSAT struct {
				Distribution []int `json:"distribution"`
			} `json:"csat"`
		}
		s.do(t, "GET", path, admin, nil).expect(t, http.StatusOK).decode(t, &sum)
		if sum.Conversations != 1 || len(sum.PerDay) != 1 || sum.PerDay[0].Date != day || sum.PerDay[0].Conversations != 1 || len(sum.CSAT.Distribution) != 5 {
			t.Fatalf("summary %+v", sum)
		}
	})
	t.Run("CSV", func(t *testing.T) {
		// The days are Berlin's here: from 23:00 UTC, Berlin is a day
		// ahead, and UTC's dates would leave the conversation out.
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().In(berlin)
		path := "/api/v1/metrics/summary?from=" + now.Format("2006-01-02") + "&to=" + now.AddDate(0, 0, 1).Format("2006-01-02")
		r := s.do(t, "GET", path+"&format=csv&tz=Europe/Berlin", admin, nil).expect(t, http.StatusOK)
		if !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("CSV headers %v", r.header)
		}
		if !strings.HasPrefix(string(r.body), "metric,value\n") || !strings.Contains(string(r.body), "\nconversations,1\n") {
			t.Fatalf("CSV body:\n%s", r.body)
		}
	})
	t.Run("ErrUnauthorized", func(t *testing.T) {
		s.do(t, "GET", path, "", nil).expect(t, http.StatusUnauthorized)
	})
	t.Run("ErrForbidden", func(t *testing.T) {
		s.do(t, "GET", path, agent, nil).expect(t, http.StatusForbidden)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for _, q := range []string{"?from=yesterday", "?tz=Mars/Olympus", "?from=" + tomorrow + "&to=" + day, "?from=2020-01-01&to=2026-01-01"} {
			if code := s.do(t, "GET", "/api/v1/metrics/summary"+q, admin, nil).expect(t, http.StatusBadRequest).errorCode(t); code != "invalid" {
				t.Errorf("%s: code %q", q, code)
			}
		}
	})
}
