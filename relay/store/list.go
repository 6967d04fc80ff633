package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay"
)

// searchWalk is how many of the newest deliveries matching the other
// filters a search looks through in order before it asks the trigram
// index (see ListDeliveries).
var searchWalk = 5000

// ListDeliveries returns deliveries newest first, and the cursor of the next
// page ("" on the last page).
//
// A search (f.Search) is matched in two steps, because neither index suits
// every term and the planner cannot tell which term is which: its
// estimates for a substring match are guesses. First the newest
// deliveries that pass the other filters are read in order, through the
// newest-first indexes, up to searchWalk of them: a common term fills the
// page within a few hundred. Only when that leaves the page short does the
// trigram index (deliveries_search_idx) find the rest, older than what
// was read: a term that rare has few matches for the index to return.
func (db *DB) ListDeliveries(ctx context.Context, f ListFilter) ([]Delivery, string, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = 50
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	var after *keyset
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		after = &keyset{at, id}
	}
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var list []Delivery
	var err error
	if f.Search == "" {
		list, err = db.listPage(ctx, f, after, true, limit+1)
	} else {
		list, err = db.searchPage(ctx, f, after, limit+1)
	}
	if err != nil {
		return nil, "", classify("list deliveries", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		last := list[len(list)-1]
		next = encodeCursor(last.CreatedAt, last.OperationID)
	}
	return list, next, nil
}

// keyset is a position in the newest-first order.
type keyset struct {
	at time.Time
	id string
}

// searchPage finds up to n deliveries matching f, search included, older
// than after.
func (db *DB) searchPage(ctx context.Context, f ListFilter, after *keyset, n int) ([]Delivery, error) {
	q, args := listQuery(f, after, false, searchWalk)
	q = strings.Replace(q, "SELECT "+deliveryColumns, "SELECT *", 1)
	arg := "$" + strconv.Itoa(len(args)+1)
	args = append(args, likePattern(f.Search), n)
	walk := "SELECT " + deliveryColumns + " FROM (" + q + ") w WHERE " + searchExpr + " ILIKE " + arg +
		" ORDER BY created_at DESC, operation_id DESC LIMIT $" + strconv.Itoa(len(args))
	rows, _ := db.pool.Query(ctx, walk, args...)
	found, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil || len(found) >= n {
		return found, err
	}
	// Where the walk stopped: nothing more when it read everything.
	q, args = listQuery(f, after, false, 1)
	q = strings.Replace(q, "SELECT "+deliveryColumns, "SELECT created_at, operation_id", 1) + " OFFSET " + strconv.Itoa(searchWalk-1)
	var edge keyset
	err = db.pool.QueryRow(ctx, q, args...).Scan(&edge.at, &edge.id)
	if errors.Is(err, pgx.ErrNoRows) {
		return found, nil
	}
	if err != nil {
		return nil, err
	}
	rest, err := db.listPage(ctx, f, &edge, true, n-len(found))
	return append(found, rest...), err
}

// listPage runs listQuery.
func (db *DB) listPage(ctx context.Context, f ListFilter, after *keyset, search bool, n int) ([]Delivery, error) {
	q, args := listQuery(f, after, search, n)
	rows, _ := db.pool.Query(ctx, q, args...)
	return pgx.CollectRows(rows, scanDelivery)
}

// listQuery builds the newest-first query for f after the position after,
// with the search when search is set, and at most n rows.
func listQuery(f ListFilter, after *keyset, search bool, n int) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Route != "" {
		where = append(where, "route = "+arg(f.Route))
	}
	if f.Conversation != "" {
		where = append(where, "conversation = "+arg(f.Conversation))
	}
	if f.AlertName != "" {
		where = append(where, "alertname = "+arg(f.AlertName))
	}
	if search && f.Search != "" {
		where = append(where, searchExpr+" ILIKE "+arg(likePattern(f.Search)))
	}
	switch f.State {
	case "":
	case relay.StatePending, relay.StateSending:
		// Queued deliveries are found through the queue's index.
		where = append(where, "final_state IS NULL AND state = "+arg(string(f.State)))
	default:
		where = append(where, "final_state = "+arg(string(f.State)))
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "created_at < "+arg(f.Until))
	}
	if after != nil {
		where = append(where, fmt.Sprintf("(created_at, operation_id) < (%s, %s)", arg(after.at), arg(after.id)))
	}
	q := "SELECT " + deliveryColumns + " FROM deliveries"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, operation_id DESC LIMIT " + arg(n)
	return q, args
}

// searchExpr is what ListFilter.Search matches, written exactly as
// deliveries_search_idx (migration 000005) indexes it.
const searchExpr = `(alertname || ' ' || split_part(text, E'\n', 1))`

// likePattern matches s anywhere, its own % _ and \ taken literally.
func likePattern(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s) + "%"
}
