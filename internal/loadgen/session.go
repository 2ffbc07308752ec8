package loadgen

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// wsFrame is the part of a server frame the scenarios read.
type wsFrame struct {
	Type        string `json:"type"`
	ClientMsgID string `json:"client_msg_id"`
	Seq         int64  `json:"seq"`
	Delta       string `json:"delta"`
	State       string `json:"state"`
	Message     *struct {
		Role        string `json:"role"`
		Seq         int64  `json:"seq"`
		ClientMsgID string `json:"client_msg_id"`
		Meta        struct {
			Decision string `json:"decision"`
		} `json:"meta"`
	} `json:"message"`
}

// session is one customer's socket, with a reader that hands every frame
// (and the time it arrived) to a function.
type session struct {
	ws   *websocket.Conn
	mu   sync.Mutex // writes
	done chan struct{}
}

// openSession opens the customer socket of conv on base and starts its
// reader.
func openSession(ctx context.Context, d *Dialer, base string, conv Conversation, fn func(f *wsFrame, at time.Time)) (*session, error) {
	ws, err := d.Dial(ctx, wsURL(base)+"/ws/conversations/"+conv.ID+"?token="+conv.Token)
	if err != nil {
		return nil, err
	}
	s := &session{ws: ws, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			at := time.Now()
			var f wsFrame
			if json.Unmarshal(data, &f) == nil {
				fn(&f, at)
			}
		}
	}()
	return s, nil
}

// send writes a customer message frame.
func (s *session) send(text, clientMsgID string) error {
	b, _ := json.Marshal(map[string]string{"type": "message", "text": text, "client_msg_id": clientMsgID})
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.ws.WriteMessage(websocket.TextMessage, b)
}

// close closes the socket and waits for the reader.
func (s *session) close() {
	s.ws.Close()
	<-s.done
}
