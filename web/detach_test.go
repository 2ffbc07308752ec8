package web

import (
	"net"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

// earlyFrameConn sends a WebSocket frame in the same write as the upgrade
// request, as a client that does not wait for the server's answer would.
type earlyFrameConn struct {
	net.Conn
	frame []byte
	sent  bool
}

func (c *earlyFrameConn) Write(p []byte) (int, error) {
	if c.sent {
		return c.Conn.Write(p)
	}
	c.sent = true
	if _, err := c.Conn.Write(append(append([]byte(nil), p...), c.frame...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// maskedTextFrame is a client's text frame (masked, as clients' must be).
func maskedTextFrame(payload string) []byte {
	key := [4]byte{7, 1, 9, 3}
	b := []byte{0x81, 0x80 | byte(len(payload))} // payload under 126 bytes
	b = append(b, key[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

// TestSocketDetach pins what Server.detach relies on in fasthttp: a
// socket's connection reads the network connection itself, unless the
// client's first frame came with its upgrade request, which fasthttp then
// keeps in its request reader; and the socket reads that frame either way.
func TestSocketDetach(t *testing.T) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ReduceMemoryUsage: true})
	app.Server().KeepHijackedConns = true
	raw := make(chan bool, 1)
	app.Get("/ws", websocket.New(func(c *websocket.Conn) {
		defer c.Close()
		raw <- rawHijack(c.NetConn())
		if _, msg, err := c.ReadMessage(); err == nil {
			_ = c.WriteMessage(websocket.TextMessage, msg)
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	defer app.Shutdown()
	url := "ws://" + ln.Addr().String() + "/ws"

	for _, tc := range []struct {
		name  string
		early bool
	}{{"Raw", false}, {"FrameWithTheUpgrade", true}} {
		t.Run(tc.name, func(t *testing.T) {
			d := fws.Dialer{HandshakeTimeout: 10 * time.Second}
			if tc.early {
				d.NetDial = func(network, addr string) (net.Conn, error) {
					c, err := net.Dial(network, addr)
					return &earlyFrameConn{Conn: c, frame: maskedTextFrame("early")}, err
				}
			}
			conn, _, err := d.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if !tc.early {
				if err := conn.WriteMessage(fws.TextMessage, []byte("late")); err != nil {
					t.Fatal(err)
				}
			}
			if got := <-raw; got == tc.early {
				t.Fatalf("rawHijack = %v; want %v", got, !tc.early)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := conn.ReadMessage()
			if want := map[bool]string{false: "late", true: "early"}[tc.early]; err != nil || string(msg) != want {
				t.Fatalf("echo %q, %v; want %q", msg, err, want)
			}
		})
	}
}
