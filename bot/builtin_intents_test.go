package bot

import "testing"

// TestBuiltinIntentsOnHeldOutPhrasings trains the classifier the way the bot
// does (trainingExamples) with only the built-in intents, then reads
// phrasings found in neither their examples nor the routine questions: the
// special intents must be recognised above the default policy's intent threshold,
// and everyday questions, near misses included, must stay below it, or the
// bot would hand them to a person instead of answering them.
func TestBuiltinIntentsOnHeldOutPhrasings(t *testing.T) {
	ex := trainingExamples(builtinIntents)
	c, err := TrainClassifier(ex, ClassifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	th := DefaultPolicy.IntentThreshold
	special := map[string]string{
		"my wallet was stolen with my cards":          IntentFraud,
		"I can't get into my account, it says locked": IntentAccountLocked,
		"this service is a joke, I want to complain":  IntentComplaint,
		"I need to speak with a manager":              IntentHuman,
		"hello there":                                 IntentGreeting,
		"thank you so much":                           IntentThanks,
		"我要投诉你们的快递":                                   IntentComplaint,
		"你好":                                          IntentGreeting,
		"我的信用卡被偷了":                                    IntentFraud,
	}
	for q, want := range special {
		if p := c.Predict(q); p.Intent != want || p.Confidence < th {
			t.Errorf("%q: %s %.2f, want %s at %.2f or more", q, p.Intent, p.Confidence, want, th)
		}
	}
	for _, q := range []string{
		"my card was rejected at the till", "payment did not go through", "how do I get my money back",
		"can I pay with paypal", "the lock on my bag is stuck", "I was charged twice",
		"退款怎么申请", "我的订单还没到",
	} {
		if p := c.Predict(q); p.Intent != IntentNone && p.Confidence >= th {
			t.Errorf("%q: %s %.2f, want no intent at %.2f or more", q, p.Intent, p.Confidence, th)
		}
	}
}
