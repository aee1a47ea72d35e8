"""Training throughput of the HF Trainer on the BERT-base architecture (random weights) with real livedoor articles.

    python benchmarks/train_throughput.py [--data ../shared/data/ldcc-20140209.tar.gz] [--steps 4]
        [--batch-size 8] [--max-length 512] [--warmup-steps 1] [--device cpu|cuda]

Architecture: BertForSequenceClassification, vocab 32768, 12 layers, hidden 768, 12 heads, FFN 3072, 9 labels —
tohoku-nlp/bert-base-japanese-v3's shape, with random weights (no download). The vocabulary is built from the
articles with the real BertJapaneseTokenizer (MeCab/unidic-lite + WordPiece) and padded to 32768 entries. Articles
are tokenised exactly as training does; batches are padded dynamically and grouped by length, as in training.
Prints samples/s and tokens/s of optimiser steps after ``--warmup-steps`` untimed ones, and one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VOCAB_SIZE = 32768


def build_tokenizer(texts: list[str], folder: Path) -> Any:
    from transformers import BertJapaneseTokenizer

    from testkit.tiny_bert import build_vocab

    vocab = build_vocab(texts, max_words=VOCAB_SIZE)[:VOCAB_SIZE]
    vocab += [f"[unused{i}]" for i in range(VOCAB_SIZE - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertJapaneseTokenizer(
        str(folder / "vocab.txt"),
        do_lower_case=False,
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs={"mecab_dic": "unidic_lite"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ldcc-20140209.tar.gz"))
    parser.add_argument("--steps", type=int, default=4, help="timed optimiser steps")
    parser.add_argument("--warmup-steps", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    args = parser.parse_args()

    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from common.labels import SLUGS, id2label, label2id
    from training.bert import tokenize
    from training.corpus import load_corpus
    from training.options import mixed_precision

    articles = load_corpus(args.data)
    total_steps = args.steps + args.warmup_steps
    sample = articles[:: max(1, len(articles) // (args.batch_size * total_steps * 4))]
    sample = sample[: args.batch_size * total_steps * 4]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        tokenizer = build_tokenizer([f"{a.title}\n{a.body}" for a in articles[::4]], Path(tmp))
        dataset = tokenize(sample, tokenizer, args.max_length)
        prep_s = time.perf_counter() - started
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=512,
            num_labels=len(SLUGS),
            id2label=id2label(),
            label2id=label2id(),
        )
        model = BertForSequenceClassification(config)
        bf16, fp16 = mixed_precision()
        use_cpu = args.device == "cpu" or not torch.cuda.is_available()
        training_args = TrainingArguments(
            output_dir=str(Path(tmp) / "run"),
            max_steps=total_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=3e-5,
            train_sampling_strategy="group_by_length",
            length_column_name="length",
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            use_cpu=use_cpu,
            bf16=bf16 and not use_cpu,
            fp16=fp16 and not use_cpu,
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        step_ends: list[float] = []
        tokens: list[int] = []

        class Timer(TrainerCallback):
            def on_step_begin(self, *a: Any, **k: Any) -> None:
                if use_cpu is False:
                    torch.cuda.synchronize()

            def on_step_end(self, *a: Any, **k: Any) -> None:
                if use_cpu is False:
                    torch.cuda.synchronize()
                step_ends.append(time.perf_counter())

        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=dataset,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[Timer()],
        )
        trainer.train()
        tokens = dataset["length"]
    timed = step_ends[args.warmup_steps - 1 :] if args.warmup_steps else [started, *step_ends]
    seconds = timed[-1] - timed[0]
    samples = args.batch_size * args.steps
    mean_len = sum(tokens) / len(tokens)
    hardware = (
        torch.cuda.get_device_name(0)
        if not use_cpu
        else f"CPU {platform.machine()} ({torch.get_num_threads()} torch threads)"
    )
    precision = "bf16" if (bf16 and not use_cpu) else "fp16" if (fp16 and not use_cpu) else "fp32"
    print(f"hardware: {hardware}; precision {precision}; torch {torch.__version__}")
    print(f"model: BERT-base (vocab {VOCAB_SIZE}, 12 layers, hidden 768), {model.num_parameters() / 1e6:.1f} M params")
    print(f"data: {len(sample)} real articles, max_length {args.max_length}, mean length {mean_len:.0f} tokens")
    print(f"setup (vocab + tokenise): {prep_s:.1f} s")
    print(f"{args.steps} timed steps × batch {args.batch_size}: {seconds:.1f} s")
    print(f"throughput: {samples / seconds:.2f} samples/s, {samples * mean_len / seconds:.0f} tokens/s (approx.)")
    result = {
        "hardware": hardware,
        "precision": precision,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "steps": args.steps,
        "seconds": round(seconds, 2),
        "samples_per_s": round(samples / seconds, 3),
        "mean_tokens": round(mean_len, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
