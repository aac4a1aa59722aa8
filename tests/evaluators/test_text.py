from evaluators import text


def test_split_sentences_splits_a_full_stop_without_a_space():
    assert text.split_sentences("It ran in the 19th century.First for Women is newer. Ok!") == [
        "It ran in the 19th century.",
        "First for Women is newer.",
        "Ok!",
    ]


def test_split_sentences_keeps_decimal_numbers_whole():
    assert text.split_sentences("It costs 3.5 dollars. Cheap.") == ["It costs 3.5 dollars.", "Cheap."]


def test_split_sentences_does_not_split_after_an_initial_or_a_title():
    assert text.split_sentences("Thomas C. Mann was appointed by Dr. Lee. He served.") == [
        "Thomas C. Mann was appointed by Dr. Lee.",
        "He served.",
    ]
    assert text.split_claims("Mark L. Lester directed it.") == ["Mark L. Lester directed it."]


def test_split_claims_splits_clause_joints():
    assert text.split_claims("Paris is big, and Lyon is small; Nice is sunny.") == [
        "Paris is big",
        "Lyon is small",
        "Nice is sunny.",
    ]


def test_numbers_reads_digits_with_commas_and_spelled_numbers():
    assert text.numbers("more than 1,600 people, eight vases and a dozen mugs in 1944") == {
        "1600",
        "8",
        "12",
        "1944",
    }


def test_entities_are_capitalised_non_stopwords():
    assert text.entities("The Oberoi Group is in Delhi's centre.") == {"oberoi", "group", "delhi"}


def test_normalise_drops_case_punctuation_and_articles():
    assert text.normalise("The  Capital, of France!") == "capital of france"


def test_parse_json_accepts_a_fenced_block():
    assert text.parse_json('```json\n{"a": 1}\n```') == {"a": 1}


def test_is_refusal_detects_non_committal_answers():
    assert text.is_refusal("I'm sorry, but I cannot help with that.")
    assert text.is_refusal("As an AI, I do not have opinions.")
    assert text.is_refusal("I don't know.")
    assert not text.is_refusal("The capital of France is Paris.")


def test_numbers_multiplies_a_spelled_number_by_the_multiplier_after_it():
    assert text.numbers("about one thousand people") == {"1000"}
    assert text.numbers("two hundred thousand years") == {"200000"}
    assert text.numbers("a thousand and eight") == {"1000", "8"}
    assert text.numbers("the hundred days of 1815") == {"100", "1815"}
