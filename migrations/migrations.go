// Package migrations embeds the SQL migrations so the relay binary carries
// its own schema. Files follow golang-migrate's NNNNNN_verb_noun.{up,down}.sql.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
