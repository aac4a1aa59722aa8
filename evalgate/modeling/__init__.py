"""Language models: loading and references, prompt rendering, decoding settings, generation
(one model, each adapter in turn, or every adapter stacked in one pass)."""
