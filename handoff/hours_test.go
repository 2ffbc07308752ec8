package handoff

import (
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/errs"
)

func TestBusinessHours(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	// Monday 2026-11-23.
	at := func(day, h, m int) time.Time { return time.Date(2026, 11, 23+day, h, m, 0, 0, paris) }
	week := map[string]string{"mon": "09:00-12:00, 13:00-17:30", "tue": "09:00-17:00", "sat": "closed"}
	tests := []struct {
		name  string
		hours map[string]string
		when  time.Time
		open  bool
		next  time.Time
	}{
		{"AlwaysOpen", nil, at(6, 3, 0), true, at(6, 3, 0)},
		{"MorningOpen", week, at(0, 9, 0), true, at(0, 9, 0)},
		{"Lunch", week, at(0, 12, 30), false, at(0, 13, 0)},
		{"EndExclusive", week, at(0, 17, 30), false, at(1, 9, 0)},
		{"BeforeOpening", week, at(1, 8, 59), false, at(1, 9, 0)},
		{"ClosedDayNextWeek", week, at(2, 10, 0), false, at(7, 9, 0)},
		{"Saturday", week, at(5, 10, 0), false, at(7, 9, 0)},
		{"OtherZone", week, time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC), true, time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseHours("Europe/Paris", tt.hours)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.Open(tt.when); got != tt.open {
				t.Fatalf("Open(%v) = %v, want %v", tt.when, got, tt.open)
			}
			next, ok := h.NextOpen(tt.when)
			if tt.open {
				return
			}
			if !ok || !next.Equal(tt.next) {
				t.Fatalf("NextOpen(%v) = %v %v, want %v", tt.when, next, ok, tt.next)
			}
		})
	}
	t.Run("NeverOpens", func(t *testing.T) {
		h, err := parseHours("UTC", map[string]string{"mon": ""})
		if err != nil {
			t.Fatal(err)
		}
		if h.Open(at(0, 10, 0)) {
			t.Fatal("open on a closed day")
		}
		if _, ok := h.NextOpen(at(0, 10, 0)); ok {
			t.Fatal("NextOpen found an opening in a week with none")
		}
	})
}

func TestBusinessHoursInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		tz    string
		hours map[string]string
	}{
		"UnknownZone":  {"Mars/Olympus", nil},
		"UnknownDay":   {"UTC", map[string]string{"monday": "09:00-17:00"}},
		"Backwards":    {"UTC", map[string]string{"mon": "17:00-09:00"}},
		"NoDash":       {"UTC", map[string]string{"mon": "09:00"}},
		"BadMinute":    {"UTC", map[string]string{"mon": "09:60-10:00"}},
		"PastMidnight": {"UTC", map[string]string{"mon": "09:00-24:30"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseHours(tc.tz, tc.hours); !errs.Is(err, errs.Invalid) {
				t.Fatalf("err %v, want Invalid", err)
			}
		})
	}
	if _, err := parseHours("UTC", map[string]string{"Mon": "00:00-24:00"}); err != nil {
		t.Fatalf("whole day: %v", err)
	}
}

func TestQueueNotice(t *testing.T) {
	five := 300
	for name, tc := range map[string]struct {
		locale, team string
		info         QueueInfo
		want         string
	}{
		"Connecting": {"en", "billing", QueueInfo{Status: "connecting"}, "Connecting you with a member of our billing team now."},
		"Waiting":    {"en", "", QueueInfo{Status: "waiting", Position: 3, EstimatedWaitSeconds: &five}, "You are number 3 in the queue for our team. The estimated wait is about 5 minutes."},
		"NoEstimate": {"en", "", QueueInfo{Status: "waiting", Position: 2}, "You are number 2 in the queue for our team. Someone will be with you as soon as possible."},
		"Offline":    {"en-GB", "billing", QueueInfo{Status: "offline"}, "No one from our billing team is online right now."},
		"Chinese":    {"zh-CN", "", QueueInfo{Status: "waiting", Position: 4}, "您在我们的团队的排队位置是第 4 位。"},
	} {
		t.Run(name, func(t *testing.T) {
			got := queueNotice(tc.locale, tc.team, tc.info)
			if len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Fatalf("notice %q, want it to start with %q", got, tc.want)
			}
		})
	}
}
