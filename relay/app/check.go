package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/render"
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
	_, err := Check(cfg)
	return err
}

// Check is CheckConfig that also returns the configuration's warnings (see
// Warnings).
func Check(cfg *config.Config) (warnings []string, err error) {
	engine, err := NewEngine(cfg)
	if err != nil {
		return nil, err
	}
	return Warnings(cfg, engine), checkSamples(cfg, engine)
}

// Warnings lists what the configuration allows but is most likely a
// mistake: a route without a token or secret that does not say
// allow_unauthenticated: true, and a block of a route's template file that
// overrides no shipped block and that the file never calls (a misspelled
// override changes nothing, silently).
func Warnings(cfg *config.Config, engine *render.Engine) []string {
	var out []string
	for _, r := range cfg.Routes {
		if r.Unauthenticated() && !r.AllowUnauthenticated {
			out = append(out, fmt.Sprintf("routes %q has no bearer token (bearer_token_file, %s or %s): anyone who "+
				"reaches the listener can post to it, unless the web configuration file asks for basic auth; "+
				"set a token, or allow_unauthenticated: true if that is meant",
				r.Name, config.RouteTokenEnv(r.Name), config.RouteTokenEnv(r.Name)+"_FILE"))
		}
	}
	warned := map[string]bool{}
	for _, r := range cfg.Routes {
		if r.TemplateFile == "" || warned[r.Template] {
			continue
		}
		warned[r.Template] = true
		for _, b := range engine.UnusedBlocks(r.Template) {
			prefix, _, _ := strings.Cut(b, ".")
			known := engine.ShippedBlocks(prefix)
			if len(known) == 0 {
				known = engine.ShippedBlocks("")
			}
			out = append(out, fmt.Sprintf("routes %q: template file %s defines block %q, which overrides nothing "+
				"and is never called (misspelled?); the shipped blocks are: %s",
				r.Name, r.TemplateFile, b, strings.Join(known, ", ")))
		}
	}
	return out
}

// checkSamples runs every route's pipeline on its format's samples.
func checkSamples(cfg *config.Config, engine *render.Engine) error {
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

func logWarnings(ctx context.Context, logger *slog.Logger, warnings []string) {
	for _, w := range warnings {
		logger.WarnContext(ctx, "configuration warning", slog.String("warning", w))
	}
}
