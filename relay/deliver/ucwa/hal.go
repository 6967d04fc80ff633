package ucwa

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Resource names, used to classify errors (§8.7) and label logs.
const (
	resRoot           = "root"
	resUser           = "user"
	resToken          = "token"
	resApplications   = "applications"
	resApplication    = "application"
	resEvents         = "events"
	resStartMessaging = "startMessaging"
	resInvitation     = "invitation"
	resConversation   = "conversation"
	resMessaging      = "messaging"
	resSendMessage    = "sendMessage"
	resMessage        = "message"
	resCancel         = "cancel"
)

// halLink is one entry of _links.
type halLink struct {
	Href string `json:"href"`
}

// halResource is the part of any UCWA resource the relay reads. Unknown
// properties and rels are ignored (§0.1).
type halResource struct {
	Links       map[string]json.RawMessage `json:"_links"`
	Embedded    map[string]json.RawMessage `json:"_embedded"`
	State       string                     `json:"state"`
	Status      string                     `json:"status"`
	OperationID string                     `json:"operationId"`
	ThreadID    string                     `json:"threadId"`
	Direction   string                     `json:"direction"`
}

// link returns the href of rel. A rel that can repeat is a JSON array
// (PROTOCOL §0.1); its first element is taken, which is all the relay needs.
// Links are decoded on demand: most are never read.
func (r *halResource) link(rel string) string {
	if r == nil {
		return ""
	}
	raw := bytes.TrimSpace(r.Links[rel])
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '[' {
		var list []halLink
		if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
			return ""
		}
		return list[0].Href
	}
	var l halLink
	if json.Unmarshal(raw, &l) != nil {
		return ""
	}
	return l.Href
}

// embedded decodes the embedded resource rel, or returns nil.
func (r *halResource) embedded(rel string) *halResource {
	if r == nil {
		return nil
	}
	raw, ok := r.Embedded[rel]
	if !ok {
		return nil
	}
	var e halResource
	if json.Unmarshal(raw, &e) != nil {
		return nil
	}
	return &e
}

func decodeJSON(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode json: %w", err)
	}
	return nil
}
