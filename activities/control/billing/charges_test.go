package billing

import (
	"testing"
	"time"

	"github.com/skypanel/skypanel/db"
)

func at(minute, second int) time.Time {
	return time.Date(2026, 11, 25, 10, minute, second, 0, time.UTC)
}

func ptr(t time.Time) *time.Time { return &t }

func TestChargesForProratesPerSecond(t *testing.T) {
	from, to := at(0, 0), at(0, 0).Add(time.Hour)
	usage := []db.UsageSegment{
		// A: the whole hour, 2 instances at 100/h: 200.
		{AppID: "a", OrgID: "o", Instances: 2, PricePerHour: 100, StartedAt: from.Add(-time.Hour)},
		// B: started at :30 with 1 instance at 100/h: 50.
		{AppID: "b", OrgID: "o", Instances: 1, PricePerHour: 100, StartedAt: at(30, 0)},
		// C: stopped at :15: 25; and started again at :45 with 3 instances: 75. 100 in all.
		{AppID: "c", OrgID: "o", Instances: 1, PricePerHour: 100, StartedAt: from.Add(-time.Minute), EndedAt: ptr(at(15, 0))},
		{AppID: "c", OrgID: "o", Instances: 3, PricePerHour: 100, StartedAt: at(45, 0)},
		// D: scaled at :20 from 1 to 4 instances at 60/h: 20 + 160 = 180.
		{AppID: "d", OrgID: "o", Instances: 1, PricePerHour: 60, StartedAt: from.Add(-time.Hour), EndedAt: ptr(at(20, 0))},
		{AppID: "d", OrgID: "o", Instances: 4, PricePerHour: 60, StartedAt: at(20, 0)},
		// E: ran before and after the period only: nothing.
		{AppID: "e", OrgID: "o", Instances: 1, PricePerHour: 100, StartedAt: from.Add(-2 * time.Hour), EndedAt: ptr(from)},
		{AppID: "e", OrgID: "o", Instances: 1, PricePerHour: 100, StartedAt: to},
		// F: 10 seconds at 1/h rounds to zero: no entry.
		{AppID: "f", OrgID: "o", Instances: 1, PricePerHour: 1, StartedAt: at(59, 50)},
		// G: 18 seconds at 100/h = 0.5 rounds half up to 1.
		{AppID: "g", OrgID: "o", Instances: 1, PricePerHour: 100, StartedAt: at(59, 42)},
	}
	want := map[string]struct {
		amount  int64
		seconds float64
	}{"a": {200, 7200}, "b": {50, 1800}, "c": {100, 900 + 3*900}, "d": {180, 1200 + 4*2400}, "g": {1, 18}}
	charges := ChargesFor(usage, from, to)
	if len(charges) != len(want) {
		t.Fatalf("%d charges %+v, want %d", len(charges), charges, len(want))
	}
	for _, c := range charges {
		w, ok := want[c.AppID]
		if !ok || c.Amount != w.amount || c.InstanceSeconds != w.seconds || !c.PeriodStart.Equal(from) || !c.PeriodEnd.Equal(to) {
			t.Errorf("app %s: amount %d, %v instance-seconds, want %+v", c.AppID, c.Amount, c.InstanceSeconds, w)
		}
	}
}

func TestPeriodStartIsAligned(t *testing.T) {
	if got := PeriodStart(at(37, 12), time.Hour); !got.Equal(at(0, 0)) {
		t.Errorf("hour: %s", got)
	}
	if got := PeriodStart(at(37, 12), 5*time.Second); !got.Equal(at(37, 10)) {
		t.Errorf("5 s: %s", got)
	}
}
