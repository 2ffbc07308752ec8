package knowledge_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/knowledge"
)

var longCSVAnswer = strings.Repeat("A long answer that must stay whole. ", 60)

var csvTests = []struct {
	name string
	in   string
	want []c
}{
	{
		name: "Basic",
		in:   "question,answer,tags\nHow do I reset my password?,Use the reset link.,account;password\n",
		want: []c{{question: "How do I reset my password?", text: "Use the reset link.", tags: []string{"account", "password"}}},
	},
	{
		name: "AnyOrderAnyCaseBOMAndExtraColumns",
		in:   "\xEF\xBB\xBF Tags ,ID,ANSWER,Question\n\"billing | invoices, billing\",7,\"Line one,\nline two\",\"Where is my invoice?\"\r\n",
		want: []c{{question: "Where is my invoice?", text: "Line one,\nline two", tags: []string{"billing", "invoices"}}},
	},
	{
		name: "NoTagsColumnAndBlankRows",
		in:   "question,answer\nQ1?,A1\n,\n\nQ2?,A2\n,,\n",
		want: []c{{question: "Q1?", text: "A1"}, {question: "Q2?", text: "A2"}},
	},
	{
		name: "SemicolonSeparated",
		in:   "question;answer;tags\n\"Open on Sunday?\";\"No, closed.\";\"hours|store\"\n",
		want: []c{{question: "Open on Sunday?", text: "No, closed.", tags: []string{"hours", "store"}}},
	},
	{
		name: "TabSeparatedAndChinese",
		in:   "question\tanswer\ttags\n可以退货吗？\t可以，三十天内。\t退货；售后\n",
		want: []c{{question: "可以退货吗？", text: "可以，三十天内。", tags: []string{"退货", "售后"}}},
	},
	{
		name: "ShortRowsAndQuotes",
		in:   "question,answer,tags\n\"Say \"\"hi\"\"?\",\"\"\"Yes\"\" we do\"\n",
		want: []c{{question: `Say "hi"?`, text: `"Yes" we do`}},
	},
	{
		name: "LongAnswerIsOneChunk",
		in:   "question,answer\nTell me everything?," + longCSVAnswer + "\n",
		want: []c{{question: "Tell me everything?", text: strings.TrimSpace(longCSVAnswer)}},
	},
}

func TestParseCSV(t *testing.T) {
	for _, tt := range csvTests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, knowledge.CSV, tt.in, knowledge.ChunkOptions{MaxRunes: 100})
			if got := chunksOf(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("chunks:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

var jsonTests = []struct {
	name string
	in   string
	want []c
}{
	{
		name: "Array",
		in:   `[{"question": "How do I pay?", "answer": "By card.", "tags": ["billing", " billing ", "", "cards"]}, {"question": "Refunds?", "answer": "Within 5 days."}]`,
		want: []c{
			{question: "How do I pay?", text: "By card.", tags: []string{"billing", "cards"}},
			{question: "Refunds?", text: "Within 5 days."},
		},
	},
	{
		name: "FAQsObjectAndStringTags",
		in:   "\xEF\xBB\xBF" + `{"faqs": [{"question": "Open late?", "answer": "Until 9.", "tags": "hours; store|late"}], "version": 2}`,
		want: []c{{question: "Open late?", text: "Until 9.", tags: []string{"hours", "store", "late"}}},
	},
	{
		name: "KeysIgnoreCaseNullTagsAndNumbers",
		in:   `[{"Question": "Speed limit?", "Answer": 30, "Tags": null, "id": 1}]`,
		want: []c{{question: "Speed limit?", text: "30"}},
	},
	{
		name: "ExactKeyWins",
		in:   `[{"QUESTION": "upper", "question": "exact?", "answer": "a"}]`,
		want: []c{{question: "exact?", text: "a"}},
	},
}

func TestParseJSON(t *testing.T) {
	for _, tt := range jsonTests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, knowledge.JSON, tt.in, knowledge.ChunkOptions{})
			if got := chunksOf(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("chunks:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

var faqErrorTests = []struct {
	name   string
	format knowledge.Format
	in     string
	msg    []string
}{
	{"CSVMissingColumns", knowledge.CSV, "Frage,Antwort\nA?,B\n", []string{`"question" and "answer"`, `"Frage", "Antwort"`}},
	{"CSVOnlyQuestion", knowledge.CSV, "question,reply\nA?,B\n", []string{`"question", "reply"`}},
	{"CSVHeaderOnly", knowledge.CSV, "question,answer\n", []string{"no FAQ rows"}},
	{"CSVEmptyAnswer", knowledge.CSV, "question,answer\nFine?,yes\nWhere?,\n", []string{`row 3 ("Where?") has no answer`}},
	{"CSVEmptyQuestion", knowledge.CSV, "question,answer\n,orphan answer\n", []string{"row 2 has an answer but no question"}},
	{"CSVManyBadRows", knowledge.CSV, "question,answer\n" + strings.Repeat("q?,\n", 8), []string{"row 2", "row 6", "and 3 more"}},
	{"CSVBareQuote", knowledge.CSV, "question,answer\nSay \"hi\"?,yes\n", []string{"line 2", "double quotes"}},
	{"CSVUnterminatedQuote", knowledge.CSV, "question,answer\nq?,a\n\"unterminated,b\n", []string{"line 3"}},
	{"JSONNotArray", knowledge.JSON, `{"question": "q", "answer": "a"}`, []string{"must be an array"}},
	{"JSONScalar", knowledge.JSON, `"just text"`, []string{"must be an array"}},
	{"JSONFAQsNotArray", knowledge.JSON, `{"faqs": {"question": "q"}}`, []string{"must be an array"}},
	{"JSONSyntax", knowledge.JSON, "[\n  {\"question\": \"q\",\n   \"answer\": }\n]", []string{"not valid JSON", "line 3"}},
	{"JSONTruncated", knowledge.JSON, `[{"question": "q"`, []string{"ends too early"}},
	{"JSONTrailingData", knowledge.JSON, `[] []`, []string{"more after"}},
	{"JSONItemNotObject", knowledge.JSON, `[{"question": "q?", "answer": "a"}, "oops"]`, []string{"item 2 is not an object"}},
	{"JSONEmptyAnswer", knowledge.JSON, `[{"question": "Why?", "answer": "  "}]`, []string{`item 1 ("Why?") has no answer`}},
	{"JSONMissingQuestion", knowledge.JSON, `[{"answer": "a"}]`, []string{"item 1 has an answer but no question"}},
	{"JSONQuestionNotText", knowledge.JSON, `[{"question": ["q"], "answer": "a"}]`, []string{`item 1: "question" must be text`}},
	{"JSONBadTags", knowledge.JSON, `[{"question": "q", "answer": "a", "tags": [1]}]`, []string{`"tags" must be a list of text`}},
	{"JSONEmptyArray", knowledge.JSON, `[]`, []string{"no FAQ items"}},
	{"JSONNotUTF8", knowledge.JSON, "[{\"question\": \"\xff\"}]", []string{"not UTF-8"}},
}

func TestParseFAQErrors(t *testing.T) {
	for _, tt := range faqErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := knowledge.Parse(tt.format, []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; got %#v", chunksOf(p))
			}
			if got := errs.CodeOf(err); got != errs.Invalid {
				t.Fatalf("code = %q (%v), want %q", got, err, errs.Invalid)
			}
			for _, want := range tt.msg {
				if !strings.Contains(errs.MessageOf(err), want) {
					t.Errorf("message %q does not contain %q", errs.MessageOf(err), want)
				}
			}
		})
	}
}
