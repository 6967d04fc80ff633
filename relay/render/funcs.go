package render

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode"

	"github.com/skype-relay/relay/relay/clean"
)

// funcMap returns the functions templates may call. now stands in for
// time.Now so tests can pin "since".
func funcMap(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"toUpper":            strings.ToUpper,
		"toLower":            strings.ToLower,
		"title":              title,
		"trimSpace":          strings.TrimSpace,
		"join":               func(sep string, s []string) string { return strings.Join(s, sep) },
		"match":              match,
		"reReplaceAll":       reReplaceAll,
		"safeHtml":           func(s string) string { return s },
		"safeUrl":            func(s string) string { return s },
		"urlUnescape":        urlUnescape,
		"raw":                raw,
		"oneLine":            oneLine,
		"stringSlice":        func(s ...string) []string { return s },
		"date":               func(layout string, t time.Time) string { return t.Format(layout) },
		"tz":                 inZone,
		"since":              func(t time.Time) time.Duration { return now().Sub(t) },
		"humanize":           humanize,
		"humanize1024":       humanize1024,
		"humanizeDuration":   humanizeDuration,
		"humanizePercentage": humanizePercentage,
		"humanizeTimestamp":  humanizeTimestamp,
		"toJson":             toJSON,
	}
}

// raw returns the data a template was given as the sender sent it, not
// cleaned: dot (a *Data, a GroupAlert in "alertmanager.alert", or a
// source's Data) has a Raw method for this.
func raw(v any) (any, error) {
	r, ok := v.(interface{ Raw() any })
	if !ok {
		return nil, fmt.Errorf("raw takes the template's dot, not %T: write {{ (raw .).CommonLabels.name }}, not {{ raw .CommonLabels.name }}", v)
	}
	return r.Raw(), nil
}

// oneLine prints v as a value on one line: line breaks and everything
// else clean.Line escapes become visible escapes. Nothing prints as "".
func oneLine(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return clean.Line(x)
	default:
		return clean.Line(fmt.Sprint(x))
	}
}

// urlUnescape undoes URL query escaping and cleans the result as one
// line: "%0A" or "%E2%80%AE" in a cleaned value must not turn back into
// what cleaning took out.
func urlUnescape(s string) (string, error) {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return "", err
	}
	return clean.Line(u), nil
}

// title upper-cases the first letter of every word and lower-cases the rest,
// as Alertmanager's title does ("hIGH cpu" → "High Cpu"). Letters, digits,
// marks, apostrophes and underscores continue a word.
func title(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	inWord := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r):
			if inWord {
				b.WriteRune(unicode.ToLower(r))
			} else {
				b.WriteRune(unicode.ToTitle(r))
			}
			inWord = true
		case unicode.IsDigit(r) || unicode.IsMark(r) || r == '\'' || r == '’' || r == '_':
			b.WriteRune(r)
			inWord = true
		default:
			b.WriteRune(r)
			inWord = false
		}
	}
	return b.String()
}

// regexps caches compiled patterns: templates call match and reReplaceAll
// with the same few literal patterns on every render. The cache is bounded
// because a template may also take patterns from the payload.
var regexps = struct {
	sync.RWMutex
	m map[string]*regexp.Regexp
}{m: make(map[string]*regexp.Regexp)}

const maxCachedRegexps = 256

func compile(pattern string) (*regexp.Regexp, error) {
	regexps.RLock()
	re, ok := regexps.m[pattern]
	regexps.RUnlock()
	if ok {
		return re, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	regexps.Lock()
	if len(regexps.m) < maxCachedRegexps {
		regexps.m[pattern] = re
	}
	regexps.Unlock()
	return re, nil
}

// match reports whether text contains a match of the regular expression
// pattern (unanchored).
func match(pattern, text string) (bool, error) {
	re, err := compile(pattern)
	if err != nil {
		return false, err
	}
	return re.MatchString(text), nil
}

// reReplaceAll replaces every match of pattern in text with repl, which may
// refer to groups as $1 or ${name}.
func reReplaceAll(pattern, repl, text string) (string, error) {
	re, err := compile(pattern)
	if err != nil {
		return "", err
	}
	return re.ReplaceAllString(text, repl), nil
}

// zones caches loaded time zones: time.LoadLocation reads the zone database
// on every call. Only names that loaded are kept, and few exist.
var zones sync.Map // string → *time.Location

// inZone returns t in the IANA time zone name ("Europe/Berlin", "UTC").
func inZone(name string, t time.Time) (time.Time, error) {
	if loc, ok := zones.Load(name); ok {
		return t.In(loc.(*time.Location)), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.Time{}, err
	}
	zones.Store(name, loc)
	return t.In(loc), nil
}

// toFloat turns what the humanize functions accept into a number: Go
// numbers, numeric strings, durations (as seconds) and times (as Unix
// seconds).
func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int8:
		return float64(x), nil
	case int16:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint:
		return float64(x), nil
	case uint8:
		return float64(x), nil
	case uint16:
		return float64(x), nil
	case uint32:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	case time.Duration:
		return x.Seconds(), nil
	case time.Time:
		return float64(x.Unix()) + float64(x.Nanosecond())/1e9, nil
	default:
		return 0, fmt.Errorf("cannot use %T as a number", v)
	}
}

func nanOrInf(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }

var (
	bigPrefixes   = []string{"k", "M", "G", "T", "P", "E", "Z", "Y"}
	smallPrefixes = []string{"m", "u", "n", "p", "f", "a", "z", "y"}
	iecPrefixes   = []string{"ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"}
)

// humanize writes a number with an SI prefix and four significant digits:
// 1234567 → "1.235M", 0.0012 → "1.2m".
func humanize(v any) (string, error) {
	f, err := toFloat(v)
	if err != nil {
		return "", err
	}
	if f == 0 || nanOrInf(f) {
		return fmt.Sprintf("%.4g", f), nil
	}
	prefix := ""
	if math.Abs(f) >= 1 {
		for _, p := range bigPrefixes {
			if math.Abs(f) < 1000 {
				break
			}
			prefix = p
			f /= 1000
		}
	} else {
		for _, p := range smallPrefixes {
			if math.Abs(f) >= 1 {
				break
			}
			prefix = p
			f *= 1000
		}
	}
	return fmt.Sprintf("%.4g%s", f, prefix), nil
}

// humanize1024 is humanize with binary prefixes: 1048576 → "1Mi".
func humanize1024(v any) (string, error) {
	f, err := toFloat(v)
	if err != nil {
		return "", err
	}
	if math.Abs(f) <= 1 || nanOrInf(f) {
		return fmt.Sprintf("%.4g", f), nil
	}
	prefix := ""
	for _, p := range iecPrefixes {
		if math.Abs(f) < 1024 {
			break
		}
		prefix = p
		f /= 1024
	}
	return fmt.Sprintf("%.4g%s", f, prefix), nil
}

// humanizeDuration writes seconds (or a time.Duration) as "1d 2h 3m 4s",
// dropping leading zero units; below a minute it keeps four significant
// digits, below a second it uses an SI prefix ("250ms").
func humanizeDuration(v any) (string, error) {
	f, err := toFloat(v)
	if err != nil {
		return "", err
	}
	if nanOrInf(f) {
		return fmt.Sprintf("%.4g", f), nil
	}
	if f == 0 {
		return "0s", nil
	}
	if math.Abs(f) >= 1 {
		sign := ""
		if f < 0 {
			sign, f = "-", -f
		}
		total := int64(f)
		days, hours, minutes, seconds := total/86400, total/3600%24, total/60%60, total%60
		switch {
		case days != 0:
			return fmt.Sprintf("%s%dd %dh %dm %ds", sign, days, hours, minutes, seconds), nil
		case hours != 0:
			return fmt.Sprintf("%s%dh %dm %ds", sign, hours, minutes, seconds), nil
		case minutes != 0:
			return fmt.Sprintf("%s%dm %ds", sign, minutes, seconds), nil
		default:
			return fmt.Sprintf("%s%.4gs", sign, f), nil
		}
	}
	prefix := ""
	for _, p := range smallPrefixes {
		if math.Abs(f) >= 1 {
			break
		}
		prefix = p
		f *= 1000
	}
	return fmt.Sprintf("%.4g%ss", f, prefix), nil
}

// humanizePercentage writes a ratio as a percentage: 0.1234 → "12.34%".
func humanizePercentage(v any) (string, error) {
	f, err := toFloat(v)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%.4g%%", f*100), nil
}

// humanizeTimestamp writes Unix seconds (or a time.Time) as a UTC time:
// "2026-11-27 13:02:05 +0000 UTC".
func humanizeTimestamp(v any) (string, error) {
	if t, ok := v.(time.Time); ok {
		return t.UTC().String(), nil
	}
	f, err := toFloat(v)
	if err != nil {
		return "", err
	}
	if nanOrInf(f) {
		return fmt.Sprintf("%.4g", f), nil
	}
	ns := f * 1e9
	if ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return "", fmt.Errorf("timestamp %v is out of range", f)
	}
	return time.Unix(0, int64(ns)).UTC().String(), nil
}

// toJSON encodes v as JSON.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
