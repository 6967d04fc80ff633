package ucwa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// discovered is what autodiscovery yields: the applications URL, which
// fixes the pool (UCWA host) of the session, and the token for that pool.
type discovered struct {
	apps *url.URL
	tok  *tokenSource
	root string // host of the root that answered
}

// discover runs autodiscovery from every configured root in order, the
// primary first (PROTOCOL §1, §9.4 step 4): the first root that leads to a
// usable pool wins, so a backup is found as soon as the primary fails.
// Nothing is cached between calls. A token endpoint refusing the account's
// credentials ends the round at once (asking the next root would only risk
// locking the account); fresh tokens refused count once per round toward
// maxAuthRefusals.
func (c *Client) discover(ctx context.Context) (*discovered, error) {
	var errs []error
	refused := false
	for _, root := range c.roots {
		d, err := c.discoverFrom(ctx, root)
		if err == nil {
			return d, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.log.WarnContext(ctx, "discovery root failed", "root", root.Host, "err", err)
		errs = append(errs, err)
		if credentialsRefused(err) {
			break
		}
		refused = refused || errors.Is(err, errTokenRefused)
	}
	if refused {
		c.authRefusals.Add(1)
	}
	return nil, fmt.Errorf("discover ucwa: %w", errors.Join(errs...))
}

// hopCounter limits redirects of any kind (3xx and redirect links) to
// maxRedirects per discovery.
type hopCounter struct {
	c    *Client
	hops int
}

func (h *hopCounter) next(from *url.URL, href string) (*url.URL, error) {
	h.hops++
	if h.hops > maxRedirects {
		return nil, fmt.Errorf("more than %d redirects", maxRedirects)
	}
	u, err := resolve(from, href)
	if err != nil {
		return nil, fmt.Errorf("redirect: %w", err)
	}
	if !h.c.hc.isAllowed(u) {
		return nil, fmt.Errorf("redirect to %s: %w", u.Host, errHostNotAllowed)
	}
	return u, nil
}

// get does a discovery GET, following 3xx answers hop by hop.
func (h *hopCounter) get(ctx context.Context, u *url.URL, resource, token string) (*response, error) {
	for {
		resp, err := h.c.hc.roundTrip(ctx, &request{
			method: http.MethodGet, url: u, resource: resource, token: token, timeout: h.c.timers.Request, wait: true,
		})
		if err != nil {
			return nil, err
		}
		if resp.status < 300 || resp.status >= 400 {
			return resp, nil
		}
		loc := resp.header.Get("Location")
		next, err := h.next(u, loc)
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w", resource, u.Host, err)
		}
		if next.Host != u.Host {
			token = "" // never carry a token across hosts
		}
		u = next
	}
}

func (c *Client) discoverFrom(ctx context.Context, root *url.URL) (*discovered, error) {
	h := &hopCounter{c: c}
	u := root
	var user *url.URL
	for user == nil {
		resp, err := h.get(ctx, u, resRoot, "")
		if err != nil {
			return nil, err
		}
		if resp.status != http.StatusOK {
			return nil, httpError(resRoot, resp, time.Now())
		}
		var doc halResource
		if err := decodeJSON(resp.body, &doc); err != nil {
			return nil, fmt.Errorf("root on %s: %w", u.Host, err)
		}
		switch {
		case doc.link("user") != "":
			if user, err = resolve(u, doc.link("user")); err != nil {
				return nil, fmt.Errorf("root on %s: user link: %w", u.Host, err)
			}
		case doc.link("redirect") != "":
			next, err := h.next(u, doc.link("redirect"))
			if err != nil {
				return nil, fmt.Errorf("root on %s: %w", u.Host, err)
			}
			u = next
		default:
			return nil, fmt.Errorf("root on %s: answer has neither user nor redirect link", u.Host)
		}
	}

	// The user resource: 401 challenge, token, then the applications link
	// (or a redirect to the pool the user is homed on).
	tok := newTokenSource(c)
	var token string
	fresh := false
	for {
		resp, err := h.get(ctx, user, resUser, token)
		if err != nil {
			return nil, err
		}
		if resp.status == http.StatusUnauthorized {
			if fresh {
				return nil, fmt.Errorf("user on %s: %w", user.Host, errTokenRefused)
			}
			ch, ok := parseChallenge(resp.header)
			if !ok {
				return nil, fmt.Errorf("user on %s: 401 without MsRtcOAuth challenge", user.Host)
			}
			if token, err = tok.refresh(ctx, token, ch); err != nil {
				return nil, err
			}
			fresh = true
			continue
		}
		if resp.status != http.StatusOK {
			return nil, httpError(resUser, resp, time.Now())
		}
		var doc halResource
		if err := decodeJSON(resp.body, &doc); err != nil {
			return nil, fmt.Errorf("user on %s: %w", user.Host, err)
		}
		if r := doc.link("redirect"); r != "" {
			next, err := h.next(user, r)
			if err != nil {
				return nil, fmt.Errorf("user on %s: %w", user.Host, err)
			}
			if next.Host != user.Host {
				// Another pool: its token endpoint will challenge again.
				tok = newTokenSource(c)
				token = ""
			}
			user, fresh = next, false
			continue
		}
		apps := doc.link("applications")
		if apps == "" {
			return nil, fmt.Errorf("user on %s: answer has no applications link", user.Host)
		}
		a, err := resolve(user, apps)
		if err != nil {
			return nil, fmt.Errorf("user on %s: applications link: %w", user.Host, err)
		}
		if !c.hc.isAllowed(a) {
			return nil, fmt.Errorf("applications link to %s: %w", a.Host, errHostNotAllowed)
		}
		if !secureFor(a) {
			return nil, fmt.Errorf("applications link to %s://%s: the token is sent only over https: %w", a.Scheme, a.Host, errInsecureLink)
		}
		return &discovered{apps: a, tok: tok, root: root.Host}, nil
	}
}
