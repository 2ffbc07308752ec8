package handoff

import (
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ name, typ, want string }{
		{"IMG_0001.JPG", "image/jpeg", "IMG_0001.JPG"},
		{"receipt.pdf", "image/png", "receipt.png"},
		{"virus.exe", "image/jpeg", "virus.jpg"},
		{`C:\Users\ann\Desktop\scan.png`, "image/png", "scan.png"},
		{"../../etc/passwd", "text/plain", "passwd.txt"},
		{"notes.CSV", "text/plain", "notes.CSV"},
		{"fac\u202Egpj.exe", "image/jpeg", "facgpj.jpg"},
		{"a\x00b\r\n\"c\".pdf", "application/pdf", "ab_c_.pdf"},
		{"", "image/webp", "photo.webp"},
		{"...", "application/pdf", "file.pdf"},
		{"report", "application/pdf", "report.pdf"},
		{"clip.mp4", "video/mp4", "clip.mp4"},
	} {
		if got := cleanName(tc.name, tc.typ); got != tc.want {
			t.Errorf("cleanName(%q, %s) = %q, want %q", tc.name, tc.typ, got, tc.want)
		}
	}
	long := cleanName(strings.Repeat("é", 110)+".txt", "text/plain")
	if n := len([]rune(long)); n != 104 {
		t.Errorf("a long name was cut to %d characters (%q)", n, long)
	}
}

func TestSniffType(t *testing.T) {
	for _, tc := range []struct {
		data string
		want string
	}{
		{"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"},
		{"\x89PNG\r\n\x1a\n\x00\x00", "image/png"},
		{"GIF89a\x01\x00", "image/gif"},
		{"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"},
		{"%PDF-1.7\n", "application/pdf"},
		{"plain words, ünïcode and 中文\n", "text/plain"},
		{"MZ\x90\x00\x03\x00\x00\x00", "application/octet-stream"},
		{"\x7fELF\x02\x01\x01", "application/octet-stream"},
		{"<!DOCTYPE html><p>hi", "text/html"},
		{"text then \x00 a NUL", "application/octet-stream"},
		{"\xff\xfeh\x00i\x00", "application/octet-stream"},
		{"valid start \xc3\x28 broken UTF-8", "application/octet-stream"},
	} {
		if got := SniffType([]byte(tc.data)); got != tc.want {
			t.Errorf("SniffType(%q) = %s, want %s", tc.data, got, tc.want)
		}
	}
}
