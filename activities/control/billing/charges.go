// Package billing holds the billing run's control-plane activities and the one rule that turns
// usage into money: per-second proration of each app's instance-seconds in a period, priced at
// its plan's hourly rate, rounded half up to a minor unit, one charge per app and period.
package billing

import (
	"math"
	"sort"
	"time"

	"github.com/skypanel/skypanel/db"
)

// PeriodStart is the start of the period containing t: periods are aligned on multiples of
// period since the Unix epoch (whole hours for the default hour).
func PeriodStart(t time.Time, period time.Duration) time.Time {
	return t.Truncate(period).UTC()
}

// ChargesFor prorates usage over [from, to): for each app (or database, one instance), the instance-seconds it ran in the
// period at each price, charged price × instance-seconds / 3600, rounded half up. Apps whose
// charge rounds to zero owe nothing and get no entry.
func ChargesFor(usage []db.UsageSegment, from, to time.Time) []db.Charge {
	type owed struct {
		charge db.Charge
		// priceSeconds sums price × instance-seconds exactly (in minor-unit-seconds per hour).
		priceSeconds float64
	}
	bySubject := map[string]*owed{}
	for _, u := range usage {
		start, end := u.StartedAt, to
		if u.EndedAt != nil && u.EndedAt.Before(end) {
			end = *u.EndedAt
		}
		if start.Before(from) {
			start = from
		}
		if !end.After(start) {
			continue
		}
		seconds := end.Sub(start).Seconds() * float64(u.Instances)
		o := bySubject[u.SubjectKey()]
		if o == nil {
			o = &owed{charge: db.Charge{Subject: u.Subject, OrgID: u.OrgID, AppID: u.AppID, AppName: u.AppName,
				DatabaseID: u.DatabaseID, DatabaseName: u.DatabaseName, PeriodStart: from.UTC(), PeriodEnd: to.UTC()}}
			bySubject[u.SubjectKey()] = o
		}
		o.charge.InstanceSeconds += seconds
		o.charge.PricePerHour = u.PricePerHour // the latest segment's price names the entry
		o.priceSeconds += seconds * float64(u.PricePerHour)
	}
	charges := make([]db.Charge, 0, len(bySubject))
	for _, o := range bySubject {
		o.charge.Amount = int64(math.Floor(o.priceSeconds/3600 + 0.5))
		if o.charge.Amount > 0 {
			charges = append(charges, o.charge)
		}
	}
	sort.Slice(charges, func(i, j int) bool { return charges[i].Key() < charges[j].Key() })
	return charges
}
