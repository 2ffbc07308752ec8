package knowledge

import (
	"strings"
	"testing"
)

// TestRecoveredTellsOurPanics: the hook hears of a panic in our code, and
// not of one inside another package (as the PDF library's are).
func TestRecoveredTellsOurPanics(t *testing.T) {
	var heard []string
	panicHook = func(r any, stack string) { heard = append(heard, stack) }
	defer func() { panicHook = nil }()
	catch := func(f func()) {
		defer func() {
			if r := recover(); r != nil {
				recovered(r)
			}
		}()
		f()
	}
	var empty []int
	n := -1
	catch(func() { _ = empty[3] })               // ours: index out of range here
	catch(func() { _ = strings.Repeat("x", n) }) // the standard library's
	catch(func() { panic(errCorruptPDF) })       // ours, but on purpose
	if len(heard) != 1 || !strings.Contains(heard[0], "TestRecoveredTellsOurPanics") {
		t.Fatalf("heard %d panics: %q; want only the index out of range", len(heard), heard)
	}
}
