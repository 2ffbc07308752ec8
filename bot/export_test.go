package bot

// SystemPrompt and SummaryPrompt let the black-box tests check that the
// instructions reach the model intact.
const (
	SystemPrompt  = systemPrompt
	SummaryPrompt = summaryPrompt
)

// StreamChunk is what the bot decodes of a streamed chunk.
type StreamChunk = streamChunk
