// Package pii finds and masks personal data in free text: payment card
// numbers, e-mail addresses, phone numbers and national ID numbers. The bot
// redacts everything that leaves the process or reaches logs; the stored
// transcript masks card numbers.
package pii

import (
	"regexp"
	"strings"
)

var (
	// cardCandidate: 13 to 19 digits, optionally grouped by spaces or dashes.
	cardCandidate = regexp.MustCompile(`\b(?:\d[ -]?){12,18}\d\b`)
	email         = regexp.MustCompile(`(?i)\b[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}\b`)
	// US social security numbers.
	ssn = regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`)
	// Chinese resident identity card numbers: 17 digits and a digit or X.
	cnID = regexp.MustCompile(`(?i)\b\d{17}[\dx]\b`)
	// Phone numbers: an optional +country code, then 7 to 15 digits with
	// the usual separators; Chinese mobiles (1[3-9] and 9 digits) too.
	phone = regexp.MustCompile(`(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}[ .\-]?\d{3,4}[ .\-]?\d{3,4}\b|1[3-9]\d{9}`)
)

// Placeholders used in redacted text.
const (
	CardMask  = "[card]"
	EmailMask = "[email]"
	PhoneMask = "[phone]"
	IDMask    = "[id]"
)

// luhn reports whether digits pass the Luhn checksum that card numbers carry.
func luhn(digits string) bool {
	sum, double := 0, false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func onlyDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// MaskCards replaces payment card numbers (13–19 digits passing the Luhn
// check) with CardMask, keeping the last four digits for reference.
func MaskCards(text string) string {
	return cardCandidate.ReplaceAllStringFunc(text, func(m string) string {
		d := onlyDigits(m)
		if len(d) < 13 || len(d) > 19 || !luhn(d) {
			return m
		}
		return CardMask[:len(CardMask)-1] + " ending " + d[len(d)-4:] + "]"
	})
}

// Redact masks every kind of personal data this package knows.
//
// Most texts have none, and every pattern needs an @ or at least seven
// digits, so a text is counted first and only the patterns it could hold
// run: the five regular expressions on every message were 5% of an
// instance's CPU in bot turns (profile at 200 turns/s). Masks never add
// digits, so the count of the text as given bounds every later step's.
func Redact(text string) string {
	digits := 0
	for i := 0; i < len(text); i++ {
		if isDigit(text[i]) {
			digits++
		}
	}
	at := strings.IndexByte(text, '@') >= 0
	if digits >= 13 {
		text = MaskCards(text)
	}
	if at {
		text = email.ReplaceAllString(text, EmailMask)
	}
	if digits >= 9 {
		text = ssn.ReplaceAllString(text, IDMask)
	}
	if digits >= 17 {
		text = cnID.ReplaceAllString(text, IDMask)
	}
	if digits >= 7 {
		text = maskPhones(text)
	}
	return text
}

// redactAll is Redact without the counting, for tests.
func redactAll(text string) string {
	text = MaskCards(text)
	text = email.ReplaceAllString(text, EmailMask)
	text = ssn.ReplaceAllString(text, IDMask)
	text = cnID.ReplaceAllString(text, IDMask)
	return maskPhones(text)
}

// maskPhones masks phone-shaped numbers that stand alone (not part of a
// longer run of digits). A number written without separators counts only
// at the usual national lengths (10 or 11 digits) or after a +, so order
// numbers are left alone.
func maskPhones(text string) string {
	var b strings.Builder
	last := 0
	for _, loc := range phone.FindAllStringIndex(text, -1) {
		i, j := loc[0], loc[1]
		if (i > 0 && isDigit(text[i-1])) || (j < len(text) && isDigit(text[j])) {
			continue
		}
		m := text[i:j]
		d := onlyDigits(m)
		if len(d) < 7 || len(d) > 15 {
			continue
		}
		separated := strings.ContainsAny(m, " .-()+")
		if !separated && len(d) != 10 && len(d) != 11 {
			continue
		}
		b.WriteString(text[last:i])
		b.WriteString(PhoneMask)
		last = j
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
