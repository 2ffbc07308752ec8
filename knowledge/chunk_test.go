package knowledge_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/knowledge"
)

func runes(s string) int { return utf8.RuneCountInString(s) }

// overlapOf returns the longest suffix of a (trimmed) that b starts with.
func overlapOf(a, b string) string {
	ra := []rune(a)
	for i := 0; i < len(ra); i++ {
		if suffix := string(ra[i:]); strings.HasPrefix(b, suffix) && strings.TrimSpace(suffix) != "" {
			return suffix
		}
	}
	return ""
}

func TestChunkPacksParagraphs(t *testing.T) {
	para := func(i int) string { return fmt.Sprintf("Paragraph %d has some words in it.", i) } // 33–34 runes
	var paras []string
	for i := range 10 {
		paras = append(paras, para(i))
	}
	p := mustParse(t, knowledge.Text, strings.Join(paras, "\n\n"), knowledge.ChunkOptions{MaxRunes: 100})
	want := []string{
		para(0) + "\n\n" + para(1),
		para(2) + "\n\n" + para(3),
		para(4) + "\n\n" + para(5),
		para(6) + "\n\n" + para(7),
		para(8) + "\n\n" + para(9),
	}
	if len(p.Chunks) != len(want) {
		t.Fatalf("got %d chunks: %#v", len(p.Chunks), chunksOf(p))
	}
	for i, w := range want {
		if p.Chunks[i].Text != w {
			t.Errorf("chunk %d = %q, want %q", i, p.Chunks[i].Text, w)
		}
	}
}

func TestChunkSplitsLongParagraph(t *testing.T) {
	var sentences []string
	for i := range 40 {
		sentences = append(sentences, fmt.Sprintf("Sentence number %d ends here.", i))
	}
	text := strings.Join(sentences, " ")

	tests := []struct {
		name string
		opt  knowledge.ChunkOptions
	}{
		{"Defaults", knowledge.ChunkOptions{MaxRunes: 300}},
		{"Overlap80", knowledge.ChunkOptions{MaxRunes: 200, OverlapRunes: 80}},
		{"NoOverlap", knowledge.ChunkOptions{MaxRunes: 200, OverlapRunes: -1}},
		{"OverlapCapped", knowledge.ChunkOptions{MaxRunes: 120, OverlapRunes: 500}},
		{"Tiny", knowledge.ChunkOptions{MaxRunes: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, knowledge.Text, text, tt.opt)
			if len(p.Chunks) < 2 {
				t.Fatalf("not split: %#v", chunksOf(p))
			}
			for i, ch := range p.Chunks {
				if runes(ch.Text) > tt.opt.MaxRunes {
					t.Errorf("chunk %d has %d runes > %d", i, runes(ch.Text), tt.opt.MaxRunes)
				}
				if tt.opt.MaxRunes >= 100 && !strings.HasSuffix(ch.Text, ".") {
					t.Errorf("chunk %d does not end on a sentence: %q", i, ch.Text)
				}
				if i == 0 {
					continue
				}
				ov := overlapOf(p.Chunks[i-1].Text, ch.Text)
				switch {
				case tt.opt.OverlapRunes < 0 && ov != "" && !strings.HasPrefix(ch.Text, "Sentence"):
					t.Errorf("chunk %d overlaps without overlap: %q", i, ov)
				case tt.opt.OverlapRunes > 0 && tt.opt.MaxRunes >= 100:
					limit := min(tt.opt.OverlapRunes, tt.opt.MaxRunes/2-1)
					if ov == "" || runes(ov) > limit {
						t.Errorf("chunk %d: overlap %q, want 1..%d runes of %q", i, ov, limit, p.Chunks[i-1].Text)
					}
					if !strings.HasPrefix(ch.Text, "Sentence") {
						t.Errorf("chunk %d: overlap does not start at a sentence: %q", i, ch.Text)
					}
				}
			}
			// Nothing is lost: every sentence appears in some chunk.
			if tt.opt.MaxRunes >= 100 {
				all := ""
				for _, ch := range p.Chunks {
					all += ch.Text + "\n"
				}
				for _, s := range sentences {
					if !strings.Contains(all, s) {
						t.Errorf("sentence %q lost", s)
					}
				}
			}
		})
	}
}

func TestChunkDefaultOverlap(t *testing.T) {
	var sb strings.Builder
	for i := range 300 {
		fmt.Fprintf(&sb, "Short one %d. ", i) // about 4000 runes, one paragraph
	}
	text := sb.String()
	p := mustParse(t, knowledge.Text, text, knowledge.ChunkOptions{})
	for i := 1; i < len(p.Chunks); i++ {
		ov := overlapOf(p.Chunks[i-1].Text, p.Chunks[i].Text)
		if runes(ov) < 50 || runes(ov) > knowledge.DefaultOverlapRunes {
			t.Errorf("chunk %d: overlap of %d runes, want about %d", i, runes(ov), knowledge.DefaultOverlapRunes)
		}
		if runes(p.Chunks[i].Text) > knowledge.DefaultMaxRunes {
			t.Errorf("chunk %d too long", i)
		}
	}
}

func TestChunkChineseSentences(t *testing.T) {
	var sentences []string
	for i := range 30 {
		sentences = append(sentences, fmt.Sprintf("这是第%d个句子，用来测试中文分句。", i))
	}
	sentences = append(sentences, "真的吗？", "是的！", "他说：“好的。”")
	text := strings.Join(sentences, "")
	p := mustParse(t, knowledge.Text, text, knowledge.ChunkOptions{MaxRunes: 60, OverlapRunes: 20})
	if len(p.Chunks) < 5 {
		t.Fatalf("not split: %#v", chunksOf(p))
	}
	for i, ch := range p.Chunks {
		if strings.Contains(ch.Text, " ") {
			t.Errorf("chunk %d has a space between Chinese sentences: %q", i, ch.Text)
		}
		last, _ := utf8.DecodeLastRuneInString(ch.Text)
		if !strings.ContainsRune("。！？”", last) {
			t.Errorf("chunk %d does not end a sentence: %q", i, ch.Text)
		}
		if i > 0 {
			ov := overlapOf(p.Chunks[i-1].Text, ch.Text)
			if ov == "" || runes(ov) > 20 {
				t.Errorf("chunk %d: overlap %q", i, ov)
			}
		}
	}
	if !strings.HasSuffix(p.Chunks[len(p.Chunks)-1].Text, "他说：“好的。”") {
		t.Errorf("closing quote split from its sentence: %q", p.Chunks[len(p.Chunks)-1].Text)
	}
}

func TestChunkSentenceBoundaries(t *testing.T) {
	// Decimal points, abbreviations followed by no space and "?!" do not
	// end sentences in the wrong place.
	text := "Version 2.5 costs $3.99 per month?! Yes. See e.g.,the docs. " + strings.Repeat("x", 10)
	p := mustParse(t, knowledge.Text, text, knowledge.ChunkOptions{MaxRunes: 40, OverlapRunes: -1})
	want := []string{"Version 2.5 costs $3.99 per month?! Yes.", "See e.g.,the docs. xxxxxxxxxx"}
	got := []string{}
	for _, ch := range p.Chunks {
		got = append(got, ch.Text)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestChunkLongSentenceWithoutPunctuation(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{"Words", strings.Repeat("word ", 500)},
		{"NoSpaces", strings.Repeat("字", 2000)},
		{"Commas", strings.Repeat("一二三四五，", 300)},
		{"OneHugeToken", strings.Repeat("a", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := knowledge.ChunkOptions{MaxRunes: 100, OverlapRunes: 20}
			p := mustParse(t, knowledge.Text, tt.text, opt)
			total := 0
			for _, ch := range p.Chunks {
				total += runes(ch.Text)
			}
			if total < runes(strings.TrimSpace(tt.text))*9/10 {
				t.Errorf("text lost: %d of %d runes in chunks", total, runes(tt.text))
			}
		})
	}
}

func TestChunkCodeBlockSplitsOnLines(t *testing.T) {
	var lines []string
	for i := range 60 {
		lines = append(lines, fmt.Sprintf("    step(%d) // do a thing", i))
	}
	in := "```\n" + strings.Join(lines, "\n") + "\n```\n"
	p := mustParse(t, knowledge.Markdown, in, knowledge.ChunkOptions{MaxRunes: 300, OverlapRunes: 40})
	if len(p.Chunks) < 3 {
		t.Fatalf("not split: %d chunks", len(p.Chunks))
	}
	for i, ch := range p.Chunks {
		for _, l := range strings.Split(ch.Text, "\n") {
			if !strings.HasPrefix(l, "    step(") || !strings.HasSuffix(l, "thing") {
				t.Errorf("chunk %d has a broken line %q", i, l)
			}
		}
	}
}

func TestChunkFAQNeverSplit(t *testing.T) {
	answer := strings.Repeat("This answer is long. ", 100)
	inputs := []struct {
		f  knowledge.Format
		in string
	}{
		{knowledge.CSV, "question,answer\nLong?," + answer},
		{knowledge.JSON, `[{"question": "Long?", "answer": "` + answer + `"}]`},
		{knowledge.Markdown, "Q: Long?\n\nA: " + answer},
		{knowledge.HTML, "<details><summary>Long?</summary>" + answer + "</details>"},
	}
	for _, in := range inputs {
		t.Run(string(in.f), func(t *testing.T) {
			p := mustParse(t, in.f, in.in, knowledge.ChunkOptions{MaxRunes: 100})
			if len(p.Chunks) != 1 || p.Chunks[0].Question != "Long?" || p.Chunks[0].Text != strings.TrimSpace(answer) {
				t.Errorf("got %#v", chunksOf(p))
			}
		})
	}
}

func TestChunkHeadingOnEveryPiece(t *testing.T) {
	in := "# Manual\n\n## Setup\n\n### Install\n\n" + strings.Repeat("Install the thing carefully. ", 100)
	p := mustParse(t, knowledge.Markdown, in, knowledge.ChunkOptions{MaxRunes: 200})
	for i, ch := range p.Chunks {
		if ch.Heading != "Setup > Install" {
			t.Errorf("chunk %d heading = %q", i, ch.Heading)
		}
	}
}
