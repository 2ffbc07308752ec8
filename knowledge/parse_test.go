package knowledge_test

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/knowledge"
)

// c is a chunk without its ordinal, for compact expectations.
type c struct {
	heading, question, text string
	tags                    []string
}

func chunksOf(p *knowledge.Parsed) []c {
	var out []c
	for _, ch := range p.Chunks {
		out = append(out, c{ch.Heading, ch.Question, ch.Text, ch.Tags})
	}
	return out
}

// mustParse parses and checks the invariants every result must hold.
func mustParse(t *testing.T, f knowledge.Format, data string, opt knowledge.ChunkOptions) *knowledge.Parsed {
	t.Helper()
	p, err := knowledge.ParseWith(f, []byte(data), opt)
	if err != nil {
		t.Fatalf("ParseWith(%s): %v", f, err)
	}
	if msg := checkParsed(p, opt); msg != "" {
		t.Fatal(msg)
	}
	return p
}

// checkParsed returns what is wrong with a result, or "": ordinals in
// order, every chunk non-empty valid UTF-8 without control characters, and
// passages within MaxRunes.
func checkParsed(p *knowledge.Parsed, opt knowledge.ChunkOptions) string {
	max := opt.MaxRunes
	if max <= 0 {
		max = knowledge.DefaultMaxRunes
	}
	if !clean(p.Title) || strings.Contains(p.Title, "\n") {
		return "bad title " + quote(p.Title)
	}
	if len(p.Chunks) == 0 {
		return "no chunks and no error"
	}
	for i, ch := range p.Chunks {
		switch {
		case ch.Ordinal != i:
			return "chunk " + quote(ch.Text) + " has a wrong ordinal"
		case strings.TrimSpace(ch.Text) == "" || !clean(ch.Text):
			return "bad chunk text " + quote(ch.Text)
		case !clean(ch.Question) || strings.Contains(ch.Question, "\n"):
			return "bad question " + quote(ch.Question)
		case !clean(ch.Heading) || strings.Contains(ch.Heading, "\n"):
			return "bad heading " + quote(ch.Heading)
		case ch.Question == "" && utf8.RuneCountInString(ch.Text) > max:
			return "passage longer than MaxRunes: " + quote(ch.Text)
		}
		for _, tag := range ch.Tags {
			if strings.TrimSpace(tag) == "" || !clean(tag) {
				return "bad tag " + quote(tag)
			}
		}
	}
	return ""
}

func clean(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7F {
			return false
		}
	}
	return true
}

func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return `"` + s + `"`
}

var markdownTests = []struct {
	name      string
	in        string
	wantTitle string
	want      []c
}{
	{
		name:      "HeadingPaths",
		in:        "# Help centre\n\nWelcome.\n\n## Shipping\n\nWe ship daily.\n\n### International\n\nCustoms may apply.\n\n## Returns\n\nThirty days.\n",
		wantTitle: "Help centre",
		want: []c{
			{text: "Welcome."},
			{heading: "Shipping", text: "We ship daily."},
			{heading: "Shipping > International", text: "Customs may apply."},
			{heading: "Returns", text: "Thirty days."},
		},
	},
	{
		name:      "TwoTopLevelHeadingsStayInPath",
		in:        "# Shipping\n\nDaily.\n\n# Returns\n\n## Refunds\n\nIn five days.\n",
		wantTitle: "Shipping",
		want: []c{
			{heading: "Shipping", text: "Daily."},
			{heading: "Returns > Refunds", text: "In five days."},
		},
	},
	{
		name:      "Setext",
		in:        "Store guide\n===========\n\nIntro text.\n\nDelivery\n--------\n\nBy post.\n",
		wantTitle: "Store guide",
		want: []c{
			{text: "Intro text."},
			{heading: "Delivery", text: "By post."},
		},
	},
	{
		name:      "QuestionHeadingIsFAQ",
		in:        "# FAQ\n\n## Orders\n\n### How long does delivery take?\n\nTwo to three days.\n\nLonger on holidays.\n\n### 可以退货吗？\n\n可以，三十天内。\n",
		wantTitle: "FAQ",
		want: []c{
			{heading: "Orders", question: "How long does delivery take?", text: "Two to three days.\n\nLonger on holidays."},
			{heading: "Orders", question: "可以退货吗？", text: "可以，三十天内。"},
		},
	},
	{
		name: "QAMarkers",
		in:   "## Payments\n\n**Q:** Which cards do you take?\nA: Visa and Mastercard.\n\nQ: Can I pay later?\n\nA: Yes, with an invoice.\n\nThis paragraph is not part of an answer.\n",
		want: []c{
			{heading: "Payments", question: "Which cards do you take?", text: "Visa and Mastercard."},
			{heading: "Payments", question: "Can I pay later?", text: "Yes, with an invoice."},
			{heading: "Payments", text: "This paragraph is not part of an answer."},
		},
	},
	{
		name: "ChineseQAMarkers",
		in:   "问：怎么修改密码？\n答：在设置页面修改。\n",
		want: []c{{question: "怎么修改密码？", text: "在设置页面修改。"}},
	},
	{
		name: "BoldQuestions",
		in:   "Intro line.\n\n**Do you ship abroad?**\n\nYes, to 40 countries.\n\n__Is there a warranty?__\n\nTwo years.\n",
		want: []c{
			{text: "Intro line."},
			{question: "Do you ship abroad?", text: "Yes, to 40 countries."},
			{question: "Is there a warranty?", text: "Two years."},
		},
	},
	{
		name: "InlineSyntax",
		in:   "See [our policy](https://example.com/p) and ![the map](map.png), *really* **now** `a_b*c` ~~old~~ <https://x.example> &amp; <span>tags</span> \\*escaped\\*.\n",
		want: []c{{text: "See our policy and the map, really now a_b*c old https://x.example & tags *escaped*."}},
	},
	{
		name: "CodeFenceKept",
		in:   "## Setup\n\nRun:\n\n```sh\ncurl -X POST \\\n  https://api.example.com/v1\n# not a heading\n```\n",
		want: []c{{heading: "Setup", text: "Run:\n\ncurl -X POST \\\n  https://api.example.com/v1\n# not a heading"}},
	},
	{
		name: "ListsAndTables",
		in:   "Steps:\n\n- open the app\n- tap *Settings*\n  and scroll\n1. first\n2) second\n- [x] done\n\n| Plan | Price |\n|------|------:|\n| Basic | $5 |\n",
		want: []c{{text: "Steps:\n\n- open the app\n- tap Settings and scroll\n1. first\n2) second\n- done\n\nPlan | Price\nBasic | $5"}},
	},
	{
		name:      "FrontMatterAndComments",
		in:        "---\ntitle: \"Returns policy\"\nlayout: page\n---\n<!-- draft note\nspanning lines -->\nReturns take thirty days.\n\n[ref]: https://example.com\n",
		wantTitle: "Returns policy",
		want:      []c{{text: "Returns take thirty days."}},
	},
	{
		name: "BlockquoteAndThematicBreak",
		in:   "> Quoted advice\n> continues here.\n\n---\n\nAfter the break.\n",
		want: []c{{text: "Quoted advice continues here.\n\nAfter the break."}},
	},
	{
		name: "CRLF",
		in:   "## A\r\n\r\nOne.\r\nTwo.\r\n",
		want: []c{{heading: "A", text: "One. Two."}},
	},
	{
		name:      "ClosedATXAndAttributes",
		in:        "# Title #\n\n## Section ## {#sec}\n\nBody.\n",
		wantTitle: "Title",
		want:      []c{{heading: "Section", text: "Body."}},
	},
}

func TestParseMarkdown(t *testing.T) {
	for _, tt := range markdownTests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, knowledge.Markdown, tt.in, knowledge.ChunkOptions{})
			if p.Title != tt.wantTitle {
				t.Errorf("title = %q, want %q", p.Title, tt.wantTitle)
			}
			if got := chunksOf(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("chunks:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseMarkdownLongAnswerUnderQuestionIsPassages(t *testing.T) {
	long := strings.Repeat("This is a sentence about the topic. ", 30)
	in := "## How does it work?\n\n" + long + "\n\n" + long + "\n"
	p := mustParse(t, knowledge.Markdown, in, knowledge.ChunkOptions{MaxRunes: 400})
	for _, ch := range p.Chunks {
		if ch.Question != "" {
			t.Fatalf("a long section became a FAQ pair: %+v", ch)
		}
		if ch.Heading != "How does it work?" {
			t.Errorf("heading = %q", ch.Heading)
		}
	}
	if len(p.Chunks) < 4 {
		t.Errorf("got %d chunks, want the text split", len(p.Chunks))
	}
}

var textTests = []struct {
	name      string
	in        string
	wantTitle string
	want      []c
}{
	{
		name:      "TitleAndParagraphs",
		in:        "Returns Policy\n\nYou can return items within 30 days.\nKeep the receipt.\n\n\nRefunds take five days.\n",
		wantTitle: "Returns Policy",
		want:      []c{{text: "You can return items within 30 days.\nKeep the receipt.\n\nRefunds take five days."}},
	},
	{
		name: "NoTitleWhenFirstLineIsASentence",
		in:   "You can return items.\n\nRefunds take five days.",
		want: []c{{text: "You can return items.\n\nRefunds take five days."}},
	},
	{
		name: "SingleParagraphIsNotATitle",
		in:   "Opening hours",
		want: []c{{text: "Opening hours"}},
	},
	{
		name:      "QAMarkers",
		in:        "Store FAQ\n\nQ: When are you open?\nA: 9 to 5, Monday to Friday.\n\nQuestion: Do you deliver?\nAnswer: Yes.\n",
		wantTitle: "Store FAQ",
		want: []c{
			{question: "When are you open?", text: "9 to 5, Monday to Friday."},
			{question: "Do you deliver?", text: "Yes."},
		},
	},
	{
		name: "ControlCharactersAndNulDropped",
		in:   "Tab\there, nul\x00 and bell\x07 gone\u00a0ok.",
		want: []c{{text: "Tab here, nul and bell gone ok."}},
	},
	{
		name: "UTF8BOM",
		in:   "\xEF\xBB\xBFHello.",
		want: []c{{text: "Hello."}},
	},
	{
		name: "UTF16LEBOM",
		in:   "\xFF\xFEH\x00i\x00.\x00",
		want: []c{{text: "Hi."}},
	},
	{
		name: "UTF16BEBOM",
		in:   "\xFE\xFF\x00H\x00i\x00.\x4F\x60",
		want: []c{{text: "Hi.你"}},
	},
}

func TestParseText(t *testing.T) {
	for _, tt := range textTests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, knowledge.Text, tt.in, knowledge.ChunkOptions{})
			if p.Title != tt.wantTitle {
				t.Errorf("title = %q, want %q", p.Title, tt.wantTitle)
			}
			if got := chunksOf(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("chunks:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

var htmlTests = []struct {
	name      string
	in        string
	wantTitle string
	want      []c
}{
	{
		name: "VisibleTextUnderHeadings",
		in: `<!doctype html><html><head><title>Help – Acme</title><style>p{color:red}</style><script>var x = "<p>no</p>";</script></head>
<body><header>Logo Menu</header><nav><a href="/">Home</a></nav>
<main><h1>Help centre</h1><p>Welcome to   our
 help.</p>
<h2>Shipping</h2><p>We ship <b>daily</b>.<br>Even on Sundays.</p>
<h3>International</h3><ul><li>Customs apply</li><li>Duties vary</li></ul>
<aside>Related links</aside><form><label>Search</label><input></form>
<div hidden>secret</div><div style="display: none">also secret</div><div aria-hidden="true">icon</div>
<noscript>enable JS</noscript><template><p>tpl</p></template></main>
<footer>© Acme</footer></body></html>`,
		wantTitle: "Help – Acme",
		want: []c{
			{text: "Welcome to our help."},
			{heading: "Shipping", text: "We ship daily.\nEven on Sundays."},
			{heading: "Shipping > International", text: "- Customs apply\n\n- Duties vary"},
		},
	},
	{
		name:      "ArticleHeaderKept",
		in:        `<body><header>Site menu</header><article><header><h1>Returns</h1><p>Updated May</p></header><h2>Refunds</h2><p>Five days.</p><footer>Share</footer></article></body>`,
		wantTitle: "Returns",
		want: []c{
			{text: "Updated May"},
			{heading: "Refunds", text: "Five days."},
		},
	},
	{
		name:      "TitleFromH1",
		in:        "<h1>Returns &amp; refunds</h1><p>Thirty days.</p>",
		wantTitle: "Returns & refunds",
		want:      []c{{text: "Thirty days."}},
	},
	{
		name: "DetailsSummary",
		in: `<h2>FAQ</h2><details><summary>Do you ship abroad?</summary><p>Yes.</p><p>To 40 countries.</p></details>
<details><summary>Empty?</summary></details><details><p>No summary here.</p></details>`,
		want: []c{
			{heading: "FAQ", question: "Do you ship abroad?", text: "Yes.\n\nTo 40 countries."},
			{heading: "FAQ", text: "Empty?\n\nNo summary here."},
		},
	},
	{
		name: "DefinitionList",
		in: `<dl><dt>How do I reset my password?</dt><dd>Use the <a href="/reset">reset page</a>.</dd>
<div><dt>Can I change my email?</dt><dd>Yes.</dd><dd>In settings.</dd></div><dt>Orphan term</dt></dl>`,
		want: []c{
			{question: "How do I reset my password?", text: "Use the reset page."},
			{question: "Can I change my email?", text: "Yes.\n\nIn settings."},
			{text: "Orphan term"},
		},
	},
	{
		name: "QuestionHeadingIsFAQ",
		in:   `<h2>Billing</h2><h3>When am I charged?</h3><p>On the first of the month.</p>`,
		want: []c{{heading: "Billing", question: "When am I charged?", text: "On the first of the month."}},
	},
	{
		name: "PreAndTable",
		in:   "<pre>line one\n  indented</pre><table><tr><th>Plan</th><th>Price</th></tr><tr><td>Basic</td><td>$5</td></tr></table>",
		want: []c{{text: "line one\n  indented\n\nPlan Price\n\nBasic $5"}},
	},
	{
		name: "RolesDropped",
		in:   `<div role="navigation">Menu</div><div role="banner">Banner</div><p>Body.</p>`,
		want: []c{{text: "Body."}},
	},
	{
		name:      "LegacyCharset",
		in:        "<html><head><meta charset=\"windows-1252\"><title>Caf\xe9</title></head><body><p>Cr\xe8me br\xfbl\xe9e.</p></body></html>",
		wantTitle: "Café",
		want:      []c{{text: "Crème brûlée."}},
	},
	{
		name: "Fragment",
		in:   "Just text, no tags.",
		want: []c{{text: "Just text, no tags."}},
	},
}

func TestParseHTML(t *testing.T) {
	for _, tt := range htmlTests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, knowledge.HTML, tt.in, knowledge.ChunkOptions{})
			if p.Title != tt.wantTitle {
				t.Errorf("title = %q, want %q", p.Title, tt.wantTitle)
			}
			if got := chunksOf(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("chunks:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseHTMLDeepNesting(t *testing.T) {
	in := strings.Repeat("<div>", 5000) + "deep text" + strings.Repeat("</div>", 5000)
	p := mustParse(t, knowledge.HTML, in, knowledge.ChunkOptions{})
	if len(p.Chunks) != 1 || p.Chunks[0].Text != "deep text" {
		t.Errorf("got %#v", chunksOf(p))
	}
}

// TestParseErrors checks that every kind of bad input gets the right code
// and a message an editor can act on.
var errorTests = []struct {
	name   string
	format knowledge.Format
	in     string
	code   errs.Code
	msg    []string // substrings of the message
}{
	{"UnknownFormat", knowledge.Format("docx"), "x", errs.Unsupported, []string{`"docx"`, ".md"}},
	{"EmptyMarkdown", knowledge.Markdown, "", errs.Invalid, []string{"the file is empty"}},
	{"BlankText", knowledge.Text, " \n\t\r\n ", errs.Invalid, []string{"the file is empty"}},
	{"BOMOnly", knowledge.Text, "\xEF\xBB\xBF", errs.Invalid, []string{"the file is empty"}},
	{"EmptyHTML", knowledge.HTML, "", errs.Invalid, []string{"the file is empty"}},
	{"EmptyPDF", knowledge.PDF, "", errs.Invalid, []string{"the file is empty"}},
	{"EmptyCSV", knowledge.CSV, "\n\n", errs.Invalid, []string{"the file is empty"}},
	{"EmptyJSON", knowledge.JSON, "", errs.Invalid, []string{"the file is empty"}},
	{"NotUTF8Text", knowledge.Text, "ok line\nbad \xff\xfe byte", errs.Invalid, []string{"not UTF-8", "line 2"}},
	{"NotUTF8Markdown", knowledge.Markdown, "# Caf\xe9", errs.Invalid, []string{"not UTF-8", "line 1"}},
	{"NotUTF8CSV", knowledge.CSV, "question,answer\nCaf\xe9?,yes", errs.Invalid, []string{"not UTF-8", "line 2"}},
	{"HeadingsOnly", knowledge.Markdown, "# Title\n\n## Section\n", errs.Invalid, []string{"no text"}},
	{"HTMLOnlyScripts", knowledge.HTML, "<script>alert(1)</script><nav>menu</nav>", errs.Invalid, []string{"no text"}},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := knowledge.Parse(tt.format, []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; got %#v", chunksOf(p))
			}
			if got := errs.CodeOf(err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
			for _, want := range tt.msg {
				if !strings.Contains(errs.MessageOf(err), want) {
					t.Errorf("message %q does not contain %q", errs.MessageOf(err), want)
				}
			}
		})
	}
}

func TestParseIsDeterministic(t *testing.T) {
	inputs := []struct {
		f  knowledge.Format
		in string
	}{
		{knowledge.Markdown, longMarkdown()},
		{knowledge.HTML, `<dl><dt>A?</dt><dd>B</dd></dl><details><summary>C?</summary>D</details>`},
		{knowledge.JSON, `{"Faqs": [{"Question": "q?", "ANSWER": "a", "tags": "x;y|z"}], "faqs": [{"question": "Q2?", "answer": "A2"}]}`},
		{knowledge.PDF, string(buildPDF("T", pdfLines("one", "two", "", "three")))},
	}
	for _, in := range inputs {
		first, err := knowledge.Parse(in.f, []byte(in.in))
		if err != nil {
			t.Fatalf("%s: %v", in.f, err)
		}
		for range 20 {
			again, _ := knowledge.Parse(in.f, []byte(in.in))
			if !reflect.DeepEqual(first, again) {
				t.Fatalf("%s: results differ:\n%#v\n%#v", in.f, first, again)
			}
		}
	}
}

func longMarkdown() string {
	var sb strings.Builder
	sb.WriteString("# Guide\n\n")
	for i := range 5 {
		sb.WriteString("## Part " + string(rune('A'+i)) + "\n\n")
		sb.WriteString(strings.Repeat("Sentences fill this paragraph with words. ", 40))
		sb.WriteString("\n\n### Is this a question?\n\nShort answer.\n\n")
	}
	return sb.String()
}
