package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/skype-relay/relay/relay/store"
)

// planNode is the part of EXPLAIN (FORMAT JSON) the plan test reads.
type planNode struct {
	NodeType  string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	Index     string     `json:"Index Name"`
	IndexCond string     `json:"Index Cond"`
	Plans     []planNode `json:"Plans"`
}

// walk calls f for n and every node below it.
func (n planNode) walk(f func(planNode)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}

// TestQueuePlansUseTheQueueIndex loads a skewed history (100,000 delivered
// deliveries for one recipient, a backlog of 20,000 for it, a little for
// others) and checks with EXPLAIN that every queue statement finds its
// rows through the queue's partial indexes: no sequential scan of
// deliveries and no walk of the seq index through the history, with the
// statistics of an empty table and after ANALYZE, as custom and as generic
// plans (a prepared statement's plan after five runs).
func TestQueuePlansUseTheQueueIndex(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	pool := b.db.Pool()

	// The statistics of a small table first: what a fresh database has.
	enqueue(t, b, "first", "g1", "firing", "busy", "other")
	if _, err := pool.Exec(ctx, `ANALYZE deliveries`); err != nil {
		t.Fatal(err)
	}
	_, err := pool.Exec(ctx, `
INSERT INTO notifications (id, route, format, dedup_key, body, received_at)
VALUES ('skew', 'prod', 'alertmanager', 'skew', '\x7b7d', now());
INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, group_key, status, text,
                        state, next_attempt_at, created_at, queued_at, updated_at)
SELECT 'skew-' || g, 'skew', 'prod', 'c', 'sip:busy@contoso.com', 'g' || (g % 50),
       CASE WHEN g % 7 = 0 THEN 'resolved' ELSE 'firing' END, 'x',
       CASE WHEN g <= 100000 THEN 'delivered' ELSE 'pending' END, now(), now(), now(), now()
FROM generate_series(1, 120000) g`)
	if err != nil {
		t.Fatal(err)
	}

	type stmt struct {
		name, sql, args string
		// index is the index the statement must use to find its rows.
		index string
	}
	stmts := []stmt{
		{"claim", store.ClaimSQL, `(now(), 100, 60000, 1, 'tok', true, 3)`, "deliveries_queue_idx"},
		{"claim next", store.ClaimNextSQL, `(now(), 60000, 1, 'sip:busy@contoso.com', 'tok', true, 3)`, "deliveries_queue_idx"},
		{"riders", store.RidersSQL, `('sip:busy@contoso.com', 100001, 64, now(), 1, true)`, "deliveries_queue_idx"},
		{"claim riders", store.ClaimRidersSQL, `('{skew-100002,skew-100003}'::text[], now(), 60000, 1, 'tok', true)`, "deliveries_pkey"},
		{"supersede", store.SupersedeFindSQL, `('sip:busy@contoso.com', 'prod', 'c', 'g1', 100001)`, "deliveries_resolved_idx"},
		{"claimed: superseded?", `SELECT 1 FROM deliveries r WHERE r.recipient = $1 AND r.group_key = $2 AND r.seq > $3
  AND r.final_state IS NULL AND r.state = 'pending' AND r.status = 'resolved' LIMIT 1`,
			`('sip:busy@contoso.com', 'g1', 100001)`, "deliveries_resolved_idx"},
	}
	check := func(stage string) {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			for i, s := range stmts {
				plan := explain(t, pool, mode, fmt.Sprintf("q%d", i), s.sql, s.args)
				used := false
				plan.walk(func(n planNode) {
					if n.NodeType == "Bitmap Index Scan" && n.Index == s.index && n.IndexCond != "" {
						used = true // below a Bitmap Heap Scan, checked there
					}
					if n.Relation != "deliveries" {
						return
					}
					switch {
					case n.NodeType == "Seq Scan" || n.NodeType == "Bitmap Heap Scan" && !bitmapByCondition(n):
						raw, _ := json.MarshalIndent(n, "", " ")
						t.Errorf("%s, %s, %s: %s of deliveries:\n%s", stage, mode, s.name, n.NodeType, raw)
					case n.Index == "deliveries_seq_key" && n.IndexCond == "":
						t.Errorf("%s, %s, %s: walks deliveries_seq_key without a condition", stage, mode, s.name)
					case n.Index == s.index:
						used = true
					}
				})
				if !used {
					raw, _ := json.MarshalIndent(plan, "", " ")
					t.Errorf("%s, %s, %s: does not use %s:\n%s", stage, mode, s.name, s.index, raw)
				}
			}
		}
	}
	check("statistics of a small table")
	if _, err := pool.Exec(ctx, `ANALYZE deliveries`); err != nil {
		t.Fatal(err)
	}
	check("after ANALYZE")
}

// bitmapByCondition reports whether a Bitmap Heap Scan reads only indexes
// with a condition, none of them the seq index (a lookup by primary key,
// or by the resolved index, is fine; a walk is not).
func bitmapByCondition(n planNode) bool {
	ok := len(n.Plans) > 0
	for _, c := range n.Plans {
		c.walk(func(b planNode) {
			if b.NodeType == "Bitmap Index Scan" && (b.Index == "deliveries_seq_key" || b.IndexCond == "") {
				ok = false
			}
		})
	}
	return ok
}

// explain returns the plan of sql with args (a parenthesised list of SQL
// literals) in plan_cache_mode mode, prepared as name on one connection.
func explain(t *testing.T, pool *pgxpool.Pool, mode, name, sql, args string) planNode {
	t.Helper()
	ctx := context.Background()
	var out planNode
	err := func() error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "PREPARE "+name+" AS "+sql); err != nil {
				return fmt.Errorf("prepare: %w", err)
			}
			defer tx.Exec(ctx, "DEALLOCATE "+name) //nolint:errcheck // the transaction ends anyway
			var raw []byte
			if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) EXECUTE "+name+args).Scan(&raw); err != nil {
				return fmt.Errorf("explain: %w", err)
			}
			var plans []struct {
				Plan planNode `json:"Plan"`
			}
			if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
				return fmt.Errorf("read plan %s: %v", strings.TrimSpace(string(raw)), err)
			}
			out = plans[0].Plan
			return nil
		})
	}()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}
