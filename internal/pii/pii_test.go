package pii

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	cases := []struct {
		name, in string
		gone     []string
		keep     []string
	}{
		{"Card", "my card is 4111 1111 1111 1111 thanks", []string{"4111 1111 1111 1111"}, []string{"ending 1111"}},
		{"CardDashes", "4242-4242-4242-4242", []string{"4242-4242-4242-4242"}, []string{"[card ending 4242]"}},
		{"NotACard", "order 1234567890123 arrived", nil, []string{"1234567890123"}},
		{"Email", "write to jane.doe+x@example.co.uk please", []string{"jane.doe"}, []string{"[email]"}},
		{"Phone", "call me on +1 415-555-0199", []string{"555-0199"}, []string{"[phone]"}},
		{"ChineseMobile", "我的手机13812345678", []string{"13812345678"}, []string{"[phone]"}},
		{"SSN", "ssn 123-45-6789", []string{"123-45-6789"}, []string{"[id]"}},
		{"ChineseID", "身份证 11010519491231002X", []string{"11010519491231002X"}, []string{"[id]"}},
		{"Plain", "Where is my order #5521?", nil, []string{"#5521"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Redact(c.in)
			for _, g := range c.gone {
				if strings.Contains(got, g) {
					t.Errorf("Redact(%q) = %q still contains %q", c.in, got, g)
				}
			}
			for _, k := range c.keep {
				if !strings.Contains(got, k) {
					t.Errorf("Redact(%q) = %q lacks %q", c.in, got, k)
				}
			}
		})
	}
}

func TestMaskCardsKeepsOtherNumbers(t *testing.T) {
	in := "card 5555 5555 5555 4444, phone 415-555-0199"
	got := MaskCards(in)
	if strings.Contains(got, "5555 5555 5555 4444") || !strings.Contains(got, "415-555-0199") {
		t.Fatalf("MaskCards(%q) = %q", in, got)
	}
}

// FuzzRedact: skipping the patterns a text cannot hold (by its digits and
// @) never changes the result.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"4111 1111 1111 1111 a@b.co +1 415 555 0199", "call 555-0199", "415 555 0199",
		"ssn 123-45-6789", "11010519491231002X", "我的手机13812345678", "x@y.zz", "order 123456 shipped",
		"4111-1111-1111-1111 and 123-45-6789 and 13812345678", "1234567", "+1 (415) 555-0199"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Redact(s), redactAll(s); got != want {
			t.Fatalf("Redact(%q) = %q, every pattern gives %q", s, got, want)
		}
	})
}
