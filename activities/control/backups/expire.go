package backups

import (
	"context"
	"time"

	"github.com/skypanel/skypanel/db"
)

// DefaultFinalBackupRetention is how long a deleted database's final backup is kept.
const DefaultFinalBackupRetention = 7 * 24 * time.Hour

// ExpireFinalBackups removes the final backups of deleted databases taken before cutoff, stored
// object first, then row, and says how many went.
func ExpireFinalBackups(ctx context.Context, st *db.Store, stores *Stores, cutoff time.Time) (int, error) {
	expired, err := st.ExpiredFinalBackups(ctx, cutoff)
	if err != nil {
		return 0, err
	}
	for i, b := range expired {
		store, err := stores.Get(b.Store)
		if err != nil {
			return i, err
		}
		if err := store.Remove(ctx, b.DatabaseID, b.ID); err != nil {
			return i, err
		}
		if err := st.DeleteBackup(ctx, b.ID); err != nil {
			return i, err
		}
	}
	return len(expired), nil
}
