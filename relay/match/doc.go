// Package match implements Alertmanager's label matchers and the small
// router relay builds from them.
//
// # Syntax
//
// A matcher is a label name, an operator and a value:
//
//	severity="critical"      equal
//	team!="db"               not equal
//	severity=~"critical|page" regular expression, fully anchored
//	instance!~"db-.*"        negated regular expression, fully anchored
//
// This is the syntax of Alertmanager's UTF-8 matcher parser (matcher/parse,
// Alertmanager 0.27 and later):
//
//   - Names and values are either double-quoted, with Go escape sequences
//     (\", \\, \n, \t, \u00e9, ...), or unquoted. An unquoted name or value is
//     a run of characters other than white space and { } ! = ~ , \ " ' and
//     the backtick; it may hold any other UTF-8 ("foo=🙂bar").
//   - A value cannot be left out: write name="" to match an empty value.
//   - A list is matchers separated by commas, optionally inside braces:
//     {a="b", c=~"d"} or a="b",c=~"d". A trailing comma is allowed, and an
//     empty input or {} is an empty list.
//   - White space between tokens is ignored.
//
// Two differences from Alertmanager, both rejecting what cannot be meant:
// an empty label name (""="x"), which no alert can carry, and a regular
// expression that is valid only once wrapped in the anchoring group
// (=~"a)|(b", which Alertmanager would accept and anchor differently).
//
// # Semantics
//
// As in Alertmanager, a label an alert does not have reads as the empty
// string: name="" and name!="x" match an alert without the label, and so
// does name=~".*". A regular expression must match the whole value: =~"db"
// does not match "db-1". It is compiled as ^(?s:re)$, so "." also matches a
// newline. A list matches when every matcher matches; the empty list
// matches every alert.
//
// # Limits
//
// Input from configuration is still checked: a list may be at most
// [MaxInputBytes] long and hold at most [MaxMatchers] matchers, a regular
// expression at most [MaxRegexBytes] long and compile to at most
// [MaxRegexInsts] instructions. Go's regular expressions run in linear
// time, so no pattern can make matching slow beyond that size.
//
// # Routing
//
// [Route] picks the conversations for one alert from a list of [Rule]s:
// the first rule whose matchers match wins, unless it says Continue, in
// which case later rules are tried as well; an alert no rule matches goes
// to the defaults. [Split] applies Route to each alert of an Alertmanager
// notification and builds one notification per conversation.
package match
