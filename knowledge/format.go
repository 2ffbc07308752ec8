// Package knowledge parses the documents content editors upload (Markdown,
// plain text, HTML, PDF, and FAQ sheets in CSV or JSON) into chunks the bot
// can search, and keeps their versions.
package knowledge

import (
	"bytes"
	"mime"
	"strings"

	"github.com/tandem-chat/tandem/internal/errs"
)

// Format is a supported document type.
type Format string

// The supported formats.
const (
	Markdown Format = "markdown"
	Text     Format = "text"
	HTML     Format = "html"
	PDF      Format = "pdf"
	CSV      Format = "csv"
	JSON     Format = "json"
)

// supportedTypes names the supported types for error messages.
const supportedTypes = "Markdown (.md), plain text (.txt), HTML (.html), PDF (.pdf), or an FAQ sheet in CSV (.csv) or JSON (.json)"

var formatByExt = map[string]Format{
	".md":       Markdown,
	".markdown": Markdown,
	".txt":      Text,
	".text":     Text,
	".html":     HTML,
	".htm":      HTML,
	".pdf":      PDF,
	".csv":      CSV,
	".json":     JSON,
}

var formatByContentType = map[string]Format{
	"text/markdown":               Markdown,
	"text/x-markdown":             Markdown,
	"text/plain":                  Text,
	"text/html":                   HTML,
	"application/xhtml+xml":       HTML,
	"application/pdf":             PDF,
	"application/x-pdf":           PDF,
	"text/csv":                    CSV,
	"application/csv":             CSV,
	"text/comma-separated-values": CSV,
	"application/json":            JSON,
	"text/json":                   JSON,
}

// DetectFormat picks the format of an uploaded file: from the file name's
// extension (.md .markdown .txt .text .html .htm .pdf .csv .json), else from
// the content type, else by sniffing the data (a PDF header, or an HTML
// document that starts with <!doctype or <html). Returns errs.Unsupported,
// with a message naming the supported types, when none of these tells.
func DetectFormat(filename, contentType string, data []byte) (Format, error) {
	if f, ok := formatByExt[extension(filename)]; ok {
		return f, nil
	}
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		if f, ok := formatByContentType[mt]; ok {
			return f, nil
		}
	}
	if f, ok := sniff(data); ok {
		return f, nil
	}
	name := baseName(filename)
	if name == "" {
		return "", errs.Errorf(errs.Unsupported, "this type of file is not supported; upload %s", supportedTypes)
	}
	return "", errs.Errorf(errs.Unsupported, "%q is not a supported type of file; upload %s", name, supportedTypes)
}

// baseName returns the last element of a path written with / or \, since
// browsers on Windows may send either.
func baseName(filename string) string {
	if i := strings.LastIndexAny(filename, `/\`); i >= 0 {
		filename = filename[i+1:]
	}
	return strings.TrimSpace(filename)
}

func extension(filename string) string {
	name := baseName(filename)
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return ""
	}
	return strings.ToLower(name[i:])
}

func sniff(data []byte) (Format, bool) {
	if bytes.HasPrefix(data, []byte("%PDF-")) {
		return PDF, true
	}
	head := data
	if len(head) > 512 {
		head = head[:512]
	}
	head = bytes.TrimPrefix(head, utf8BOM)
	head = bytes.TrimLeft(head, " \t\r\n")
	lower := bytes.ToLower(head)
	if bytes.HasPrefix(lower, []byte("<!doctype html")) || bytes.HasPrefix(lower, []byte("<html")) {
		return HTML, true
	}
	return "", false
}
