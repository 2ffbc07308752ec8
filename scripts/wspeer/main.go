// Command wspeer is the peer that `tandem loadgen sockets --peer` measures
// Tandem against: the smallest useful WebSocket server in Go, an echo
// server on net/http and gorilla/websocket with the library's defaults
// (one goroutine per connection, reading and writing back; the upgrader
// reuses the HTTP server's 4 KB read and write buffers). It does less than
// Tandem does for a customer socket (no authentication, no subscription, no
// pings, no writer of its own), so it is a floor, not a rival product.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/gorilla/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19401", "address to listen on")
	flag.Parse()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
