// Package wstest has WebSocket client tricks that tests of several
// packages use to act like real, impatient clients.
package wstest

import "net"

// EarlyFrameConn sends Frame in the same write as the first one made on it
// (the upgrade request), as a client that does not wait for the server's
// 101 would.
type EarlyFrameConn struct {
	net.Conn
	Frame []byte
	sent  bool
}

func (c *EarlyFrameConn) Write(p []byte) (int, error) {
	if c.sent {
		return c.Conn.Write(p)
	}
	c.sent = true
	if _, err := c.Conn.Write(append(append([]byte(nil), p...), c.Frame...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// MaskedTextFrame is a client's text frame (masked, as clients' must be)
// of a payload under 64 KB.
func MaskedTextFrame(payload []byte) []byte {
	key := [4]byte{7, 1, 9, 3}
	b := []byte{0x81}
	if len(payload) < 126 {
		b = append(b, 0x80|byte(len(payload)))
	} else {
		b = append(b, 0x80|126, byte(len(payload)>>8), byte(len(payload)))
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}
