package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay/store"
)

// TestListSearch matches alert names and first lines of text, whatever the
// case, with LIKE's wildcards taken literally, through both steps of the
// search (the walk alone, and the trigram index for what the walk leaves),
// page after page.
func TestListSearch(t *testing.T) {
	// Not parallel: it shortens the walk for the whole package.
	defer store.SetSearchWalk(store.SetSearchWalk(4))
	b := setup(t)
	ctx := context.Background()
	var ids []string
	for i := range 12 {
		got := enqueue(t, b, fmt.Sprintf("k%d", i), "g", "firing", "alice")
		ids = append(ids, got[0])
		b.advance(time.Second)
	}
	// Newest first: ids[11] .. ids[0].
	set := func(id, alertname, text string) {
		if _, err := b.db.Pool().Exec(ctx, `UPDATE deliveries SET alertname = $2, text = $3 WHERE operation_id = $1`,
			id, alertname, text); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range ids {
		set(id, "Other", fmt.Sprintf("[FIRING:1] Other %d\nDiskFull in the second line", i))
	}
	set(ids[0], "DiskFull", "[FIRING:1] DiskFull\nmore")
	set(ids[1], "HighLatency", "[RESOLVED] diskfull on db-1\nmore")
	set(ids[10], "DiskFull", "[FIRING:1] DiskFull\nmore")
	set(ids[5], "Odd", "[FIRING:1] 100%_done\\ok")
	set(ids[6], "Odd", "[FIRING:1] 1000 done")

	for _, tc := range []struct {
		name   string
		search string
		limit  int
		want   []string
	}{
		{"name and first line, any case, across both steps", "DISKfull", 2, []string{ids[10], ids[1], ids[0]}},
		{"nothing", "nosuchalert", 5, nil},
		{"wildcards are literal", "100%_done\\", 5, []string{ids[5]}},
		{"the second line is not searched", "second line", 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			cursor := ""
			for range 10 {
				list, next, err := b.db.ListDeliveries(ctx, store.ListFilter{Search: tc.search, Limit: tc.limit, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range list {
					got = append(got, d.OperationID)
				}
				if cursor = next; cursor == "" {
					break
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ListDeliveries(Search: %q) (-want +got):\n%s", tc.search, diff)
			}
		})
	}
}
