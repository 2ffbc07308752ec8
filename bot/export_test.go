package bot

// SystemPrompt and SummaryPrompt let the black-box tests check that the
// instructions reach the model intact.
const (
	SystemPrompt  = systemPrompt
	SummaryPrompt = summaryPrompt
)
