package config

import (
	"log/slog"
	"net/url"
	"strings"
)

// LogValue implements slog.LogValuer: the startup summary of the
// configuration, with every secret shown only as where it came from.
//
//	logger.Info("config loaded", slog.Any("config", cfg))
func (c *Config) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("<nil>")
	}
	// Routes are a group keyed by name: handlers render a group of groups
	// well, a slice of groups poorly.
	routes := make([]any, 0, len(c.Routes))
	for _, r := range c.Routes {
		routes = append(routes, slog.Group(r.Name,
			slog.String("format", r.Format),
			slog.String("template", r.Template),
			slog.String("conversations", strings.Join(r.Conversations, ",")),
			slog.String("token", secretSource(r.BearerToken)),
			slog.Bool("allow_unauthenticated", r.AllowUnauthenticated),
		))
	}
	attrs := []slog.Attr{
		slog.String("listen_address", c.ListenAddress),
		slog.Group("database",
			slog.String("url", RedactDatabaseURL(c.Database.URL.Reveal())),
			slog.Int("max_conns", c.Database.MaxConns),
		),
		slog.Group("api",
			slog.Bool("enabled", c.API.Enabled()),
			slog.String("token", secretSource(c.API.BearerToken)),
			slog.String("redeliver_window", c.API.RedeliverWindow.String()),
		),
		slog.Group("console",
			slog.Bool("sign_in", c.Console.Enabled()),
			slog.String("users_file", c.Console.UsersFile),
			slog.String("proxy_user_header", c.Console.Proxy.UserHeader),
			slog.String("proxy_trusted_addresses", strings.Join(c.Console.Proxy.TrustedAddresses, ",")),
			slog.String("session_ttl", c.Console.SessionTTL.String()),
			slog.String("cookie_key", secretSource(c.Console.CookieKey)),
		),
		slog.Group("ingest",
			slog.Int64("max_body_bytes", c.Ingest.MaxBodyBytes),
			slog.Int64("max_inflight_bytes", c.Ingest.MaxInflightBytes),
			slog.String("dedup_window", c.Ingest.DedupWindow.String()),
			slog.String("request_timeout", c.Ingest.RequestTimeout.String()),
			slog.String("write_timeout", c.Ingest.WriteTimeout.String()),
			slog.Int("batch_max", c.Ingest.BatchMax),
			slog.Int("batch_max_bytes", c.Ingest.BatchMaxBytes),
			slog.Int("max_messages_per_notification", c.Ingest.MaxMessagesPerNotification),
		),
		slog.Group("ucwa",
			slog.Bool("enabled", c.UCWA.Enabled()),
			slog.String("discovery_urls", strings.Join(c.UCWA.DiscoveryURLs, ",")),
			slog.String("username", c.UCWA.Username),
			slog.String("password", secretSource(c.UCWA.Password)),
			slog.Bool("insecure_skip_verify", c.UCWA.InsecureSkipVerify),
		),
		slog.Int("conversations", len(c.Conversations)),
		slog.Group("routes", routes...),
		slog.String("retention", c.Retention.String()),
		slog.Group("log", slog.String("level", c.Log.Level), slog.String("format", c.Log.Format)),
	}
	return slog.GroupValue(attrs...)
}

// secretSource describes a secret for logs: "unset" or where it came from.
func secretSource(s Secret) string {
	if !s.IsSet() {
		return "unset"
	}
	return s.Source()
}

// RedactDatabaseURL returns a loggable form of a PostgreSQL connection
// string: scheme, user, host, port and database of a URL, without password
// or query parameters (which may hold one). A keyword/value string or
// anything unparsable gives "[REDACTED]"; "" gives "unset".
func RedactDatabaseURL(raw string) string {
	if raw == "" {
		return "unset"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" && u.Path == "" {
		return redacted
	}
	out := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if u.User != nil {
		out.User = url.User(u.User.Username())
	}
	return out.String()
}
