package web

import (
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/kpi"
)

// metricsSummary is GET /api/v1/metrics/summary?from=&to=&tz=&format=csv:
// the admin dashboard's figures for conversations started in [from, to).
// from and to are RFC 3339 times or dates (midnight in tz); the default is
// the last 30 days. tz (an IANA zone, default UTC) decides the days.
func (s *Server) metricsSummary(c *fiber.Ctx) error {
	loc := time.UTC
	if tz := c.Query("tz"); tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return errs.Errorf(errs.Invalid, "tz must be a time zone name such as Europe/Berlin")
		}
		loc = l
	}
	to := time.Now()
	from := to.AddDate(0, 0, -30)
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := c.Query(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			if t, err = time.ParseInLocation("2006-01-02", v, loc); err != nil {
				return errs.Errorf(errs.Invalid, "%s must be a date (2006-01-02) or an RFC 3339 time", p.name)
			}
		}
		*p.t = t
	}
	sum, err := kpi.Compute(c.UserContext(), s.deps.Pool, from, to, loc)
	if err != nil {
		return err
	}
	if c.Query("format") == "csv" {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="tandem-kpis-%s-%s.csv"`,
			from.In(loc).Format("20060102"), to.In(loc).Format("20060102")))
		return sum.WriteCSV(c.Response().BodyWriter())
	}
	return c.JSON(sum)
}
