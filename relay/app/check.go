package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/source"
	"github.com/skype-relay/relay/relay/source/generic"
	"github.com/skype-relay/relay/relay/source/github"
	"github.com/skype-relay/relay/relay/source/gitlab"
)

// CheckConfig builds everything a config needs and runs every route's
// pipeline (decode, route, render) on the built-in sample requests of its
// format, so a template that fails on real data is found before it is
// served.
func CheckConfig(cfg *config.Config) error {
	engine, err := NewEngine(cfg)
	if err != nil {
		return err
	}
	icfg := IngestConfig(cfg, engine)
	var errs []error
	for _, r := range cfg.Routes {
		route := icfg.Routes[r.Name]
		for _, s := range SampleRequests(route) {
			if _, err := icfg.Prepare(route, s.Header, s.Body); err != nil {
				errs = append(errs, fmt.Errorf("routes %q, sample %q: %w", r.Name, s.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// SampleRequests returns built-in requests of route's format, signed as the
// sender would sign them for this route.
func SampleRequests(route *ingest.Route) []source.Sample {
	var out []source.Sample
	switch route.Format {
	case ingest.FormatGitHub:
		out = github.Samples()
	case ingest.FormatGitLab:
		out = gitlab.Samples()
	case ingest.FormatGeneric:
		out = generic.Samples()
	default:
		for i, m := range alertmanager.Samples() {
			b, err := jsonBody(m)
			if err != nil {
				continue
			}
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			out = append(out, source.Sample{Name: fmt.Sprintf("alertmanager-%d-%s", i+1, m.Status), Header: h, Body: b})
		}
	}
	for _, s := range out {
		Sign(route, s.Header, s.Body)
	}
	return out
}

// Sign adds what route's sender would add to authenticate a request: the
// GitHub signature or the GitLab token.
func Sign(route *ingest.Route, h http.Header, body []byte) {
	switch route.Format {
	case ingest.FormatGitHub:
		github.Sign(h, body, route.Secret)
	case ingest.FormatGitLab:
		gitlab.Sign(h, route.Secret)
	}
}

func jsonBody(m *alertmanager.Message) ([]byte, error) { return json.Marshal(m) }
