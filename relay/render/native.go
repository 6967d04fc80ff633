package render

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/skype-relay/relay/relay/alertmanager"
)

// The shipped "alertmanager" template is what nearly every route renders,
// on every request, and text/template spends most of its time in
// reflection: about 90µs for a five-alert group, a third of a webhook's
// CPU. writeAlertmanager produces the same text directly. The template in
// templates/alertmanager.tmpl stays the definition: the engine uses this
// function only for the shipped set with no block overridden (a template
// file gets the interpreter), and TestNativeMatchesTemplate and
// FuzzNativeMatchesTemplate compare the two outputs byte for byte after
// tidying, so a change to either that the other lacks fails the tests.
//
// The output may differ from the interpreter's before tidying (blank lines,
// trailing spaces), never after.
func writeAlertmanager(b *bytes.Buffer, d *Data) error {
	// alertmanager.title
	b.WriteByte('[')
	writeCounts(b, d)
	b.WriteString("] ")
	writeGroup(b, d)
	b.WriteByte('\n')

	// alertmanager.summary
	if len(d.AllAlerts) > 1 {
		for _, k := range [...]string{"summary", "description", "message"} {
			if v := d.CommonAnnotations[k]; v != "" {
				b.WriteString(v)
				b.WriteByte('\n')
			}
		}
		if v := d.CommonAnnotations["runbook_url"]; v != "" {
			b.WriteString("Runbook: ")
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	b.WriteByte('\n')

	for _, a := range d.GroupAlerts() {
		// Stop at the output limit as the interpreter does, rather than
		// build the whole text first.
		if b.Len() > MaxOutputBytes {
			return ErrTooLarge
		}
		b.WriteByte('\n')
		if err := writeAlert(b, &a); err != nil {
			return err
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')

	// alertmanager.truncated
	switch n := d.TruncatedAlerts; {
	case n == 1:
		b.WriteString("+1 more alert not shown")
	case n > 1:
		b.WriteByte('+')
		b.WriteString(strconv.Itoa(n))
		b.WriteString(" more alerts not shown")
	}
	b.WriteString("\n\n")

	// alertmanager.links
	if u := d.AlertsURL(); u != "" {
		b.WriteString("Alerts: ")
		b.WriteString(u)
		b.WriteByte('\n')
	}
	if d.Status == alertmanager.StatusFiring {
		if u := d.SilenceURL(); u != "" {
			b.WriteString("Silence: ")
			b.WriteString(u)
			b.WriteByte('\n')
		}
	}
	return nil
}

// writeCounts is alertmanager.counts: "FIRING:2, RESOLVED:1".
func writeCounts(b *bytes.Buffer, d *Data) {
	firing, resolved := 0, 0
	for _, a := range d.AllAlerts {
		switch a.Status {
		case alertmanager.StatusFiring:
			firing++
		case alertmanager.StatusResolved:
			resolved++
		}
	}
	if firing > 0 {
		b.WriteString("FIRING:")
		b.WriteString(strconv.Itoa(firing))
	}
	if firing > 0 && resolved > 0 {
		b.WriteString(", ")
	}
	if resolved > 0 {
		b.WriteString("RESOLVED:")
		b.WriteString(strconv.Itoa(resolved))
	}
	if firing == 0 && resolved == 0 {
		b.WriteString(strings.ToUpper(d.Status))
	}
}

// writeGroup is alertmanager.group: the group label values, else the
// receiver, then the other common labels in parentheses.
func writeGroup(b *bytes.Buffer, d *Data) {
	if len(d.GroupLabels) > 0 {
		for i, p := range d.GroupLabels.SortedPairs() {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(p.Value)
		}
	} else {
		b.WriteString(d.Receiver)
	}
	if rest := d.CommonLabels.Remove(d.GroupLabels.Names()); len(rest) > 0 {
		b.WriteString(" (")
		b.WriteString(rest.SortedPairs().String())
		b.WriteByte(')')
	}
}

// writeAlert is alertmanager.alert.
func writeAlert(b *bytes.Buffer, a *GroupAlert) error {
	resolved := a.Status == alertmanager.StatusResolved
	resolvedHere := resolved && a.Group.Status != alertmanager.StatusResolved
	if a.Name != "" || a.Extra != "" || resolvedHere {
		b.WriteString("* ")
		if resolvedHere {
			b.WriteString("[RESOLVED] ")
		}
		b.WriteString(a.Name)
		if a.Name != "" && a.Extra != "" {
			b.WriteString(": ")
		}
		b.WriteString(a.Extra)
		b.WriteByte('\n')
	}
	for _, v := range [...]string{a.Summary, a.Description, a.Message} {
		if v != "" {
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	if resolved && !a.EndsAt.IsZero() {
		after, err := humanizeDuration(a.EndsAt.Sub(a.StartsAt))
		if err != nil {
			return err
		}
		b.WriteString("Resolved ")
		b.WriteString(a.EndsAt.UTC().Format(alertTimeLayout))
		b.WriteString(", after ")
		b.WriteString(after)
		b.WriteByte('\n')
	} else {
		b.WriteString("Since ")
		b.WriteString(a.StartsAt.UTC().Format(alertTimeLayout))
		b.WriteByte('\n')
	}
	if a.GeneratorURL != "" {
		b.WriteString("Source: ")
		b.WriteString(a.GeneratorURL)
		b.WriteByte('\n')
	}
	if a.Runbook != "" {
		b.WriteString("Runbook: ")
		b.WriteString(a.Runbook)
		b.WriteByte('\n')
	}
	return nil
}

// alertTimeLayout is the layout of alertmanager.time.
const alertTimeLayout = "2006-01-02 15:04 MST"
