package handoff

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	// Time zones come with the binary, so business hours work on hosts
	// without a zoneinfo database (containers).
	_ "time/tzdata"

	"github.com/tandem-chat/tandem/internal/errs"
)

// dayKeys are the keys of a team's hours, Sunday first like time.Weekday.
var dayKeys = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// span is an opening range in minutes after midnight, [from, to).
type span struct{ from, to int }

// businessHours is a team's opening hours in its time zone. With no days
// at all the team is always open.
type businessHours struct {
	loc  *time.Location
	days [7][]span
	any  bool
}

// parseHours reads {"mon": "09:00-17:00", "sat": "10:00-12:00,14:00-16:00"}
// in time zone tz. Returns Invalid with what is wrong.
func parseHours(tz string, hours map[string]string) (*businessHours, error) {
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, errs.Errorf(errs.Invalid, "timezone %q is not a known time zone (e.g. Europe/Paris, America/New_York, UTC)", tz)
	}
	h := &businessHours{loc: loc}
	for key, v := range hours {
		d := slices.Index(dayKeys, strings.ToLower(key))
		if d < 0 {
			return nil, errs.Errorf(errs.Invalid, "hours: %q is not a day (use %s)", key, strings.Join(dayKeys, ", "))
		}
		v = strings.TrimSpace(v)
		h.any = true
		if v == "" || strings.EqualFold(v, "closed") {
			continue
		}
		for _, part := range strings.Split(v, ",") {
			a, b, ok := strings.Cut(strings.TrimSpace(part), "-")
			from, err1 := parseClock(a)
			to, err2 := parseClock(b)
			if !ok || err1 != nil || err2 != nil || to <= from {
				return nil, errs.Errorf(errs.Invalid, "hours.%s: %q is not a range like 09:00-17:00", key, part)
			}
			h.days[d] = append(h.days[d], span{from, to})
		}
		slices.SortFunc(h.days[d], func(x, y span) int { return x.from - y.from })
	}
	return h, nil
}

func parseClock(s string) (int, error) {
	hh, mm, ok := strings.Cut(strings.TrimSpace(s), ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return h*60 + m, nil
}

// Open reports whether t falls in the opening hours.
func (h *businessHours) Open(t time.Time) bool {
	if !h.any {
		return true
	}
	lt := t.In(h.loc)
	min := lt.Hour()*60 + lt.Minute()
	for _, sp := range h.days[lt.Weekday()] {
		if min >= sp.from && min < sp.to {
			return true
		}
	}
	return false
}

// NextOpen returns when the team next opens after t, within a week; false
// when it never opens.
func (h *businessHours) NextOpen(t time.Time) (time.Time, bool) {
	if !h.any {
		return t, true
	}
	lt := t.In(h.loc)
	midnight := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, h.loc)
	for i := 0; i <= 7; i++ {
		day := midnight.AddDate(0, 0, i)
		for _, sp := range h.days[day.Weekday()] {
			at := time.Date(day.Year(), day.Month(), day.Day(), sp.from/60, sp.from%60, 0, 0, h.loc)
			if at.After(t) {
				return at, true
			}
		}
	}
	return time.Time{}, false
}
