package store

import (
	"strconv"
	"time"
)

// EnqueueBatch writes ns as one group commit, as concurrent Enqueue calls
// would, and returns the ids each was given.
func (db *DB) EnqueueBatch(ns []*NewNotification, now time.Time) ([]EnqueueResult, []string, error) {
	items := make([]enqueueItem, len(ns))
	ids := make([]string, len(ns))
	for i, n := range ns {
		id := newID(now)
		items[i] = enqueueItem{n: n, id: id, now: now}
		for j := range n.Messages {
			items[i].opIDs = append(items[i].opIDs, id+"-"+strconv.Itoa(j+1))
		}
		ids[i] = id
	}
	res, err := db.writeEnqueues(items)
	return res, ids, err
}

// Classify is classify, for tests.
var Classify = classify

// QueuedEnqueues is how many Enqueue calls wait for a group commit.
func (db *DB) QueuedEnqueues() int { return db.enqueuer.queued() }

// WaitFor is waitFor, for tests.
var WaitFor = waitFor

// Queue statements, for the plan tests.
const (
	ClaimSQL         = claimSQL
	RidersSQL        = ridersSQL
	ClaimRidersSQL   = claimRidersSQL
	ClaimNextSQL     = claimNextSQL
	SupersedeFindSQL = supersedeFindSQL
)

// SetSearchWalk changes how far a search walks before it asks the trigram
// index, and returns the previous value.
func SetSearchWalk(n int) int {
	old := searchWalk
	searchWalk = n
	return old
}
