package ucwasim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// controlCall sends one call written as in ControlRecipes, "METHOD PATH
// [BODY]", to the control API at base.
func controlCall(t *testing.T, base, call string) (int, string) {
	t.Helper()
	method, rest, _ := strings.Cut(call, " ")
	path, body, _ := strings.Cut(rest, " ")
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestControlIndex: GET /sim/ lists every call and the recipes.
func TestControlIndex(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for _, path := range []string{"/sim/", "/sim", "/"} {
		status, body := controlCall(t, s.ControlURL(), "GET "+path)
		var index struct {
			Calls   []ControlCall   `json:"calls"`
			Recipes []ControlRecipe `json:"recipes"`
		}
		if err := json.Unmarshal([]byte(body), &index); status != http.StatusOK || err != nil ||
			len(index.Calls) != len(ControlAPI) || len(index.Recipes) != len(ControlRecipes) {
			t.Errorf("GET %s = %d, %d calls, %d recipes (%v), want 200 with %d and %d", path, status,
				len(index.Calls), len(index.Recipes), err, len(ControlAPI), len(ControlRecipes))
		}
	}
	help := ControlHelp()
	for _, c := range ControlAPI {
		if !strings.Contains(help, c.Method+" ") || !strings.Contains(help, c.Path) {
			t.Errorf("ControlHelp lacks %s %s", c.Method, c.Path)
		}
	}
}

// TestControlCallsAnswer calls every listed call: each is served (a 400
// for a missing body is fine, the mux's own 404 or 405 is not).
func TestControlCallsAnswer(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	fill := strings.NewReplacer("{pool}", "fe1", "{sip}", "sip:oncall@contoso.com", "pool=NAME", "pool=fe1",
		"sip=URI", "sip=sip:oncall@contoso.com", "host=H&from=T&to=T", "host=fe1")
	for _, c := range ControlAPI {
		path := c.Path
		if c.Query != "" {
			path += "?" + c.Query
		}
		call := c.Method + " " + fill.Replace(path)
		if c.Body != "" {
			call += " " + c.Body
		}
		status, body := controlCall(t, s.ControlURL(), call)
		if status != http.StatusOK {
			t.Errorf("%s = %d %q, want 200", call, status, body)
		}
	}
}

// TestControlRecipes runs every recipe's calls in order.
func TestControlRecipes(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for _, r := range ControlRecipes {
		for _, call := range r.Calls {
			if status, body := controlCall(t, s.ControlURL(), call); status != http.StatusOK {
				t.Errorf("recipe %q: %s = %d %q, want 200", r.Name, call, status, body)
			}
		}
	}
}
