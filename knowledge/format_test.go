package knowledge_test

import (
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/knowledge"
)

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name        string
		filename    string
		contentType string
		data        string
		want        knowledge.Format
	}{
		{"Markdown", "faq.md", "", "", knowledge.Markdown},
		{"MarkdownLong", "Guide.MARKDOWN", "", "", knowledge.Markdown},
		{"Text", "notes.txt", "", "", knowledge.Text},
		{"TextLong", "notes.text", "", "", knowledge.Text},
		{"HTML", "page.html", "", "", knowledge.HTML},
		{"HTM", "PAGE.HTM", "", "", knowledge.HTML},
		{"PDF", "manual.pdf", "", "", knowledge.PDF},
		{"CSV", "faq.csv", "", "", knowledge.CSV},
		{"JSON", "faq.json", "", "", knowledge.JSON},
		{"PathWithDirs", "docs/help/faq.md", "", "", knowledge.Markdown},
		{"WindowsPath", `C:\Users\ed\faq.CSV`, "", "", knowledge.CSV},
		{"ExtensionBeatsContentType", "faq.csv", "text/plain", "", knowledge.CSV},
		{"ContentType", "upload", "application/pdf", "", knowledge.PDF},
		{"ContentTypeWithParams", "", "text/html; charset=utf-8", "", knowledge.HTML},
		{"ContentTypeMarkdown", "blob", "text/markdown", "", knowledge.Markdown},
		{"ContentTypeJSON", "", "application/json", "", knowledge.JSON},
		{"ContentTypeCSV", "", "text/csv", "", knowledge.CSV},
		{"ContentTypePlain", "", "text/plain; charset=us-ascii", "", knowledge.Text},
		{"UnknownExtensionUsesContentType", "faq.bak", "text/csv", "", knowledge.CSV},
		{"SniffPDF", "scan", "application/octet-stream", "%PDF-1.7\n...", knowledge.PDF},
		{"SniffDoctype", "", "", "\xEF\xBB\xBF  \n<!DOCTYPE html><html><body>Hi</body></html>", knowledge.HTML},
		{"SniffHTML", "index", "", "<HTML><body>Hi</body></HTML>", knowledge.HTML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := knowledge.DetectFormat(tt.filename, tt.contentType, []byte(tt.data))
			if err != nil {
				t.Fatalf("DetectFormat: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDetectFormatUnsupported(t *testing.T) {
	tests := []struct {
		name        string
		filename    string
		contentType string
		data        string
		wantInMsg   string
	}{
		{"Word", "report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "PK\x03\x04", `"report.docx"`},
		{"NoExtensionPlainBytes", "", "", "hello", "not supported"},
		{"BadContentType", "x", ";;;", "hello", `"x"`},
		{"Nothing", "", "", "", "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := knowledge.DetectFormat(tt.filename, tt.contentType, []byte(tt.data))
			if errs.CodeOf(err) != errs.Unsupported {
				t.Fatalf("code = %q (%v), want %q", errs.CodeOf(err), err, errs.Unsupported)
			}
			msg := errs.MessageOf(err)
			for _, want := range []string{tt.wantInMsg, ".md", ".txt", ".html", ".pdf", ".csv", ".json"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not mention %q", msg, want)
				}
			}
		})
	}
}
