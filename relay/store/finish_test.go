package store_test

import (
	"testing"

	"github.com/skype-relay/relay/relay/store"
)

// TestFinishWithoutRecords: the finish written when the attempt rows are
// refused has none, its carried finishes neither, and the original (kept
// by the journal) is left whole.
func TestFinishWithoutRecords(t *testing.T) {
	rec := &store.AttemptRecord{Outcome: "delivered", Carried: 1}
	f := store.Finish{OperationID: "h", Record: rec, Carried: []store.Finish{
		{OperationID: "r", Record: &store.AttemptRecord{Outcome: "delivered", CarriedBy: "h"}},
	}}
	bare := f.WithoutRecords()
	if bare.Record != nil || len(bare.Carried) != 1 || bare.Carried[0].Record != nil || bare.Carried[0].OperationID != "r" {
		t.Errorf("WithoutRecords = %+v, want the head and its rider without attempt rows", bare)
	}
	if f.Record != rec || f.Carried[0].Record == nil {
		t.Errorf("WithoutRecords changed the original: %+v", f)
	}
}
