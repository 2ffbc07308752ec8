package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// HolderCommand is the hidden loadgen scenario that runs HoldSockets; the
// sockets scenario starts its own binary with it ("tandem loadgen
// HolderCommand").
const HolderCommand = "sockets-holder"

// perHolder is how many sockets one client process holds at most: this
// container lets a process have 20,000 open files (the hard RLIMIT_NOFILE,
// which it may not raise), so tens of thousands of sockets need several
// client processes, as they need several server processes.
const perHolder = 16000

// HoldSockets is the client end of idle sockets, in a child process of the
// sockets scenario. It reads commands from in, one per line, and answers
// each with one line on out:
//
//	open WORKERS COUNT   followed by COUNT lines of ws:// URLs: opens them,
//	                     WORKERS at a time; answers "opened TOTAL" (the
//	                     sockets it holds) or "error MESSAGE" (the first
//	                     failure). A URL ending in "#centrifugo:CHANNEL"
//	                     is a Centrifugo server's: the socket joins it as
//	                     a client subscribed to CHANNEL (centrifugoJoin)
//	closed               answers "closed K": how many of its sockets the
//	                     server has closed so far
//
// Each socket has a reader goroutine (which answers the server's pings), so
// a socket the server closes is counted. At the end of in, it closes every
// socket and returns.
func HoldSockets(ctx context.Context, in io.Reader, out io.Writer) error {
	var (
		mu     sync.Mutex
		conns  []*websocket.Conn
		closed atomic.Int64
		d      Dialer
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, ws := range conns {
			ws.Close()
		}
	}()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "open":
			workers, err1 := strconv.Atoi(f[1])
			count, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil || workers <= 0 || count < 0 {
				return fmt.Errorf("loadgen: holder: bad command %q", sc.Text())
			}
			urls := make([]string, 0, count)
			for len(urls) < count && sc.Scan() {
				urls = append(urls, sc.Text())
			}
			if len(urls) < count {
				return fmt.Errorf("loadgen: holder: %d of %d URLs before the end of input", len(urls), count)
			}
			err := parallel(ctx, count, min(workers, max(count, 1)), func(i int) error {
				u, channel, centrifugo := strings.Cut(urls[i], "#centrifugo:")
				ws, err := d.Dial(ctx, u)
				if err != nil {
					return err
				}
				mu.Lock()
				conns = append(conns, ws)
				mu.Unlock()
				if centrifugo {
					if err := centrifugoJoin(ws, channel); err != nil {
						return err
					}
				}
				go func() {
					for {
						_, msg, err := ws.ReadMessage()
						if err != nil {
							closed.Add(1)
							return
						}
						// Centrifugo's ping is an empty command, answered in kind
						// (only this goroutine writes once the socket is open).
						if centrifugo && string(msg) == "{}" {
							if ws.WriteMessage(websocket.TextMessage, msg) != nil {
								closed.Add(1)
								return
							}
						}
					}
				}()
				return nil
			})
			mu.Lock()
			total := len(conns)
			mu.Unlock()
			if err != nil {
				fmt.Fprintf(out, "error opening socket %d: %s\n", total+1, strings.ReplaceAll(err.Error(), "\n", " "))
			} else {
				fmt.Fprintf(out, "opened %d\n", total)
			}
		case len(f) == 1 && f[0] == "closed":
			fmt.Fprintf(out, "closed %d\n", closed.Load())
		default:
			return fmt.Errorf("loadgen: holder: unknown command %q", sc.Text())
		}
	}
	return sc.Err()
}

// centrifugoJoin makes ws a Centrifugo client subscribed to channel, as a
// Tandem customer's socket is subscribed to its conversation: it sends the
// connect and subscribe commands (Centrifugo's JSON protocol, two commands
// in one frame) and waits for both replies, failing on an error reply.
func centrifugoJoin(ws *websocket.Conn, channel string) error {
	cmd := fmt.Sprintf("{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":%q}}", channel)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		return err
	}
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	defer ws.SetReadDeadline(time.Time{})
	for answered := 0; answered < 2; {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("centrifugo: %w", err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(msg)), "\n") {
			var reply struct {
				ID    int             `json:"id"`
				Error json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal([]byte(line), &reply); err != nil {
				return fmt.Errorf("centrifugo: reply %q: %w", line, err)
			}
			if len(reply.Error) > 0 {
				return fmt.Errorf("centrifugo: command %d: %s", reply.ID, reply.Error)
			}
			if reply.ID == 1 || reply.ID == 2 {
				answered++
			}
		}
	}
	return nil
}

// holder is the parent's end of one HoldSockets process.
type holder struct {
	name string
	in   io.WriteCloser
	out  *bufio.Scanner
	logs *tailBuffer
	// wait ends the child and waits for it (nil in tests, where the
	// holder is a goroutine).
	wait func()
}

// startHolder runs this binary's HoldSockets as a child process.
func startHolder(ctx context.Context, name string) (*holder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("loadgen: %s: %w", name, err)
	}
	cmd := exec.CommandContext(ctx, exe, "loadgen", HolderCommand)
	h := &holder{name: name, logs: &tailBuffer{max: 4 << 10}}
	cmd.Stderr = h.logs
	if h.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h.out = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	h.wait = func() {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	return h, nil
}

// open has the holder open urls, workers at a time.
func (h *holder) open(urls []string, workers int) error {
	w := bufio.NewWriterSize(h.in, 64<<10)
	fmt.Fprintf(w, "open %d %d\n", workers, len(urls))
	for _, u := range urls {
		w.WriteString(u)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("loadgen: %s: %w: %s", h.name, err, h.logs)
	}
	line, err := h.reply()
	if err != nil {
		return err
	}
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return fmt.Errorf("loadgen: %s: %s", h.name, msg)
	}
	if !strings.HasPrefix(line, "opened ") {
		return fmt.Errorf("loadgen: %s answered %q", h.name, line)
	}
	return nil
}

// closedCount asks how many of the holder's sockets the server has closed.
func (h *holder) closedCount() (int, error) {
	if _, err := io.WriteString(h.in, "closed\n"); err != nil {
		return 0, fmt.Errorf("loadgen: %s: %w: %s", h.name, err, h.logs)
	}
	line, err := h.reply()
	if err != nil {
		return 0, err
	}
	rest, ok := strings.CutPrefix(line, "closed ")
	k, err := strconv.Atoi(rest)
	if !ok || err != nil {
		return 0, fmt.Errorf("loadgen: %s answered %q", h.name, line)
	}
	return k, nil
}

func (h *holder) reply() (string, error) {
	if h.out.Scan() {
		return h.out.Text(), nil
	}
	err := h.out.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return "", fmt.Errorf("loadgen: %s ended: %w: %s", h.name, err, h.logs)
}

// stop closes the holder's input, which closes its sockets and ends it.
func (h *holder) stop() {
	h.in.Close()
	if h.wait != nil {
		h.wait()
	}
}

// holders are the client processes of one measurement; sockets are spread
// evenly over them.
type holders []*holder

func startHolders(ctx context.Context, n int) (holders, error) {
	var hs holders
	for i := range n {
		h, err := startHolder(ctx, fmt.Sprintf("client %d of %d", i+1, n))
		if err != nil {
			hs.stop()
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// open spreads urls over the holders in equal contiguous parts and opens
// them all at once, workers at a time in all.
func (hs holders) open(urls []string, workers int) error {
	per := max(workers/len(hs), 1)
	errs := make([]error, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		part := urls[i*len(urls)/len(hs) : (i+1)*len(urls)/len(hs)]
		wg.Go(func() { errs[i] = h.open(part, per) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (hs holders) closedCount() (int, error) {
	total := 0
	for _, h := range hs {
		k, err := h.closedCount()
		if err != nil {
			return total, err
		}
		total += k
	}
	return total, nil
}

func (hs holders) stop() {
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Go(h.stop)
	}
	wg.Wait()
}
