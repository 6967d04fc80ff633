package ucwasim

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// faultJSON is Fault on the wire: durations as Go strings ("250ms").
type faultJSON struct {
	Pool               string `json:"pool"`
	Resource           string `json:"resource"`
	Status             int    `json:"status"`
	Code               string `json:"code"`
	Subcode            string `json:"subcode"`
	RetryAfter         string `json:"retryAfter"`
	Location           string `json:"location"`
	Delay              string `json:"delay"`
	Reset              bool   `json:"reset"`
	AfterEffect        bool   `json:"afterEffect"`
	SuppressCompletion bool   `json:"suppressCompletion"`
	MessageFailure     bool   `json:"messageFailure"`
	Count              int    `json:"count"`
	From               string `json:"from"`
	Until              string `json:"until"`
}

type behaviorJSON struct {
	Kind    BehaviorKind `json:"kind"`
	After   string       `json:"after"`
	Code    string       `json:"code"`
	Subcode string       `json:"subcode"`
}

func parseDur(name, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", name, err)
	}
	return d, nil
}

func (fj faultJSON) fault() (Fault, error) {
	f := Fault{Pool: fj.Pool, Resource: fj.Resource, Status: fj.Status, Code: fj.Code, Subcode: fj.Subcode,
		RetryAfter: fj.RetryAfter, Location: fj.Location, Reset: fj.Reset, AfterEffect: fj.AfterEffect,
		SuppressCompletion: fj.SuppressCompletion, MessageFailure: fj.MessageFailure, Count: fj.Count}
	var err error
	if f.Delay, err = parseDur("delay", fj.Delay); err != nil {
		return f, err
	}
	if f.From, err = parseDur("from", fj.From); err != nil {
		return f, err
	}
	if f.Until, err = parseDur("until", fj.Until); err != nil {
		return f, err
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return f, fmt.Errorf("status %d out of range", f.Status)
	}
	return f, nil
}

// controlHandler serves the HTTP control API on ControlURL().
func (s *Sim) controlHandler() http.Handler {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter) { writeJSON(w, http.StatusOK, map[string]string{"status": "ok"}) }
	bad := func(w http.ResponseWriter, err error) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	}
	decode := func(r *http.Request, v any) error {
		body, err := readBody(r, 64<<10)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, v); err != nil {
			return fmt.Errorf("decode body: %w", err)
		}
		return nil
	}
	knownPool := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		name := r.PathValue("pool")
		if name == "" {
			name = r.URL.Query().Get("pool")
		}
		if s.byName[name] == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown pool " + fmt.Sprintf("%q", name)})
			return "", false
		}
		return name, true
	}

	handlers := map[string]http.HandlerFunc{
		"GET /sim/messages":      func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Messages()) },
		"GET /sim/violations":    func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Violations()) },
		"GET /sim/stats":         func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) },
		"GET /sim/conversations": func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Conversations()) },
		"POST /sim/reply": func(w http.ResponseWriter, r *http.Request) {
			var body struct{ SIP, Text string }
			if err := decode(r, &body); err != nil {
				bad(w, err)
				return
			}
			if body.SIP == "" {
				bad(w, fmt.Errorf("sip is required"))
				return
			}
			writeJSON(w, http.StatusOK, map[string]int{"conversations": s.Reply(body.SIP, body.Text)})
		},
		"GET /sim/requests": func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.RequestLog()) },
		"POST /sim/faults": func(w http.ResponseWriter, r *http.Request) {
			var fj faultJSON
			if err := decode(r, &fj); err != nil {
				bad(w, err)
				return
			}
			f, err := fj.fault()
			if err != nil {
				bad(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]int{"id": s.Inject(f)})
		},
		"DELETE /sim/faults": func(w http.ResponseWriter, _ *http.Request) { s.ClearFaults(); ok(w) },
		"POST /sim/pools/{pool}/gone": func(w http.ResponseWriter, r *http.Request) {
			if name, found := knownPool(w, r); found {
				s.PoolGone(name)
				ok(w)
			}
		},
		"POST /sim/pools/{pool}/recover": func(w http.ResponseWriter, r *http.Request) {
			if name, found := knownPool(w, r); found {
				s.PoolRecover(name)
				ok(w)
			}
		},
		"PUT /sim/pools/{pool}/link-host": func(w http.ResponseWriter, r *http.Request) {
			name, found := knownPool(w, r)
			if !found {
				return
			}
			var body struct {
				Host *string `json:"host"`
			}
			if err := decode(r, &body); err != nil {
				bad(w, err)
				return
			}
			if body.Host == nil {
				bad(w, fmt.Errorf("host is required (\"\" restores normal links)"))
				return
			}
			if err := checkLinkHost(*body.Host); err != nil {
				bad(w, err)
				return
			}
			s.SetLinkHost(name, *body.Host)
			ok(w)
		},
		"GET /sim/rate": func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			host := q.Get("host")
			if s.rates[host] == nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown host %q", host)})
				return
			}
			var from, to time.Time
			for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
				if v := q.Get(name); v != "" {
					t, err := time.Parse(time.RFC3339Nano, v)
					if err != nil {
						bad(w, fmt.Errorf("parse %s: %w", name, err))
						return
					}
					*dst = t
				}
			}
			maxPerSec, total := s.RequestRate(host, from, to)
			writeJSON(w, http.StatusOK, map[string]any{"host": host, "maxPerSecond": maxPerSec, "total": total})
		},
		"POST /sim/home": func(w http.ResponseWriter, r *http.Request) {
			if name, found := knownPool(w, r); found {
				s.SetHomePool(name)
				ok(w)
			}
		},
		"POST /sim/applications/kill":            func(w http.ResponseWriter, _ *http.Request) { s.KillApplications(); ok(w) },
		"POST /sim/tokens/expire":                func(w http.ResponseWriter, _ *http.Request) { s.ExpireTokens(); ok(w) },
		"POST /sim/events/replace":               func(w http.ResponseWriter, _ *http.Request) { s.ReplacePGets(); ok(w) },
		"POST /sim/applications/displace":        func(w http.ResponseWriter, _ *http.Request) { s.DisplaceApplications(); ok(w) },
		"POST /sim/applications/expire-activity": func(w http.ResponseWriter, _ *http.Request) { s.ExpireActivity(); ok(w) },
		"POST /sim/events/drop":                  func(w http.ResponseWriter, _ *http.Request) { s.DropEventChannel(); ok(w) },
		"POST /sim/conversations/end": func(w http.ResponseWriter, r *http.Request) {
			sip := r.URL.Query().Get("sip")
			if sip == "" {
				bad(w, fmt.Errorf("sip query parameter is required"))
				return
			}
			s.EndConversations(sip)
			ok(w)
		},
		"PUT /sim/recipients/{sip}": func(w http.ResponseWriter, r *http.Request) {
			var list []behaviorJSON
			if err := decode(r, &list); err != nil {
				bad(w, err)
				return
			}
			bs := make([]Behavior, 0, len(list))
			for _, bj := range list {
				d, err := parseDur("after", bj.After)
				if err != nil {
					bad(w, err)
					return
				}
				switch bj.Kind {
				case "", Accept, Decline, Ignore, NotFound, Offline, DND, Forbidden:
				default:
					bad(w, fmt.Errorf("unknown behavior kind %q", bj.Kind))
					return
				}
				bs = append(bs, Behavior{Kind: bj.Kind, After: d, Code: bj.Code, Subcode: bj.Subcode})
			}
			s.SetRecipient(r.PathValue("sip"), bs...)
			ok(w)
		},
		"PUT /sim/recipients/{sip}/unconfirmed": func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				On *bool `json:"on"`
			}
			if err := decode(r, &body); err != nil {
				bad(w, err)
				return
			}
			if body.On == nil {
				bad(w, fmt.Errorf("on is required"))
				return
			}
			s.SetUnconfirmed(r.PathValue("sip"), *body.On)
			ok(w)
		},
	}
	// Every call is registered from ControlAPI, which GET /sim/ serves and
	// ucwa-sim -h prints, so the list cannot miss one.
	for _, c := range ControlAPI {
		pattern := c.Method + " " + c.Path
		h, ok := handlers[pattern]
		if !ok {
			panic("ucwasim: ControlAPI lists " + pattern + ", which has no handler")
		}
		mux.HandleFunc(pattern, h)
		delete(handlers, pattern)
	}
	for pattern := range handlers {
		panic("ucwasim: control handler " + pattern + " is missing from ControlAPI")
	}
	// Indented: people read it with curl.
	index, err := json.MarshalIndent(map[string]any{"calls": ControlAPI, "recipes": ControlRecipes}, "", "  ")
	if err != nil {
		panic("ucwasim: encode the control API: " + err.Error())
	}
	for _, p := range []string{"GET /sim/{$}", "GET /sim", "GET /{$}"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write(append(index, '\n'))
		})
	}
	return http.MaxBytesHandler(mux, 1<<20)
}

// checkLinkHost accepts "" or a bare host name or IP address, no port.
func checkLinkHost(host string) error {
	if host == "" {
		return nil
	}
	u, err := url.Parse("http://" + net.JoinHostPort(host, "80"))
	if err != nil || u.Hostname() != host || u.Port() != "80" || u.User != nil || u.Path != "" {
		return fmt.Errorf("host %q is not a bare host name (no scheme, port or path)", host)
	}
	return nil
}
