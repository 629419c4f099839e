package nodegateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
)

// Task tokens. Temporal's own token names the workflow, run and activity it completes, and the
// frontend accepts it from anyone: a node that learnt another node's token could complete that
// node's work. So the gateway never hands a node Temporal's token as it is. It wraps it:
//
//	version (1 byte) | len(node id) (1 byte) | node id | Temporal's token | HMAC-SHA256
//
// with the MAC, under the gateway's task-token key, over everything before it. A respond or a
// heartbeat unwraps it: the MAC must verify and the node id must be the caller's. Nothing is
// kept per task, so a token survives a gateway restart and any API replica accepts it.
const (
	taskTokenVersion = 1
	macSize          = sha256.Size
)

// errForeignTaskToken: the token was not handed to this node by the gateway (forged, altered,
// another node's, or Temporal's own).
var errForeignTaskToken = errors.New("the task token was not handed to this node by the gateway")

// taskTokens wraps and unwraps the tokens of one gateway key.
type taskTokens struct{ key []byte }

func (t taskTokens) wrap(nodeID string, token []byte) []byte {
	out := make([]byte, 0, 2+len(nodeID)+len(token)+macSize)
	out = append(out, taskTokenVersion, byte(len(nodeID)))
	out = append(out, nodeID...)
	out = append(out, token...)
	return append(out, t.mac(out)...)
}

// unwrap returns Temporal's token from a wrapped one, or errForeignTaskToken.
func (t taskTokens) unwrap(nodeID string, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 2+macSize || wrapped[0] != taskTokenVersion {
		return nil, errForeignTaskToken
	}
	idEnd := 2 + int(wrapped[1])
	body := wrapped[:len(wrapped)-macSize]
	if len(body) <= idEnd || !hmac.Equal(t.mac(body), wrapped[len(body):]) {
		return nil, errForeignTaskToken
	}
	// The MAC proves the gateway wrapped it; the id says for whom.
	if string(body[2:idEnd]) != nodeID {
		return nil, errForeignTaskToken
	}
	return body[idEnd:], nil
}

func (t taskTokens) mac(body []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(body)
	return m.Sum(nil)
}
