package web

import (
	"net"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/internal/wstest"
)

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
					return &wstest.EarlyFrameConn{Conn: c, Frame: wstest.MaskedTextFrame([]byte("early"))}, err
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
