package handoff

import (
	"testing"
	"time"
)

// TestUnsent: what the publisher held back is kept for replayWindow,
// oldest first, and taken once.
func TestUnsent(t *testing.T) {
	var u unsent
	t0 := time.Now()
	for i := range 5 {
		u.add(t0.Add(time.Duration(i)*time.Second), envelope{Topic: string(rune('a' + i))})
	}
	// At t0+4s, the events of t0 and t0+1s are past the window.
	got := u.take(t0.Add(4 * time.Second))
	want := "cde"
	s := ""
	for _, env := range got {
		s += env.Topic
	}
	if s != want {
		t.Errorf("kept %q, want %q", s, want)
	}
	if again := u.take(t0.Add(4 * time.Second)); len(again) != 0 {
		t.Errorf("taken twice: %d events", len(again))
	}
}

// TestPeersAlone: alone only after listening a whole window without
// hearing another instance; a peer heard after a quiet window is news.
func TestPeersAlone(t *testing.T) {
	p := newPeers(10 * time.Second)
	t0 := time.Now()
	if p.alone(t0) {
		t.Error("alone before listening")
	}
	p.up(t0)
	if p.alone(t0.Add(9 * time.Second)) {
		t.Error("alone before a whole window of listening")
	}
	if !p.alone(t0.Add(10 * time.Second)) {
		t.Error("not alone after a quiet window")
	}
	p.hear(t0.Add(11 * time.Second))
	select {
	case <-p.joined:
	default:
		t.Error("a peer after a quiet window did not signal")
	}
	if p.alone(t0.Add(20 * time.Second)) {
		t.Error("alone within a window of hearing a peer")
	}
	p.hear(t0.Add(12 * time.Second))
	select {
	case <-p.joined:
		t.Error("a peer heard again within the window signalled")
	default:
	}
	if !p.alone(t0.Add(22 * time.Second)) {
		t.Error("not alone a window after the last peer")
	}
	p.down()
	if p.alone(t0.Add(60 * time.Second)) {
		t.Error("alone while not listening")
	}
}
