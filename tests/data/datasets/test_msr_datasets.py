"""MSR dataset loaders (KuaiRand-1K, Ali-CCP, Amazon 5-core, Douban, MIND) on real samples and real-format raw files."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from recwise.data.datasets import prepare
from recwise.data.datasets.douban import PROCESS_SCRIPT_ORDER, read_douban
from recwise.data.datasets.kuairand import read_kuairand
from recwise.errors import ConfigError, DataError

# ------------------------------------------------------------------------------ the real samples

# name -> (rows, per-scenario counts, label rate, sparse fields, dense fields)
SAMPLES = {
    "kuairand": ("kuairand-1k", 200, [0, 200, 0, 0, 0], 0.16, 32, 4),
    "ali-ccp": ("ali-ccp", 200, [146, 32, 22], 0.08, 23, 8),
    "douban": ("douban", 3000, [364, 337, 2299], 0.64533, 4, 0),
    "mind": ("mind", 8000, [3742, 1565, 1428, 1265], 0.045375, 3, 0),
}


@pytest.mark.parametrize("folder", sorted(SAMPLES))
def test_sample_loads_with_paper_rules(folder: str, msr_sample: Callable[[str], Path], cache_root: Path) -> None:
    name, rows, per_scenario, rate, n_sparse, n_dense = SAMPLES[folder]
    prepared = prepare(name, msr_sample(folder), root=cache_root)
    table, schema = prepared.table, prepared.table.schema
    assert len(table) == rows
    assert schema.num_scenarios == len(per_scenario)  # from the rule, not from the data
    assert np.bincount(table.columns["scenario"], minlength=len(per_scenario)).tolist() == per_scenario
    assert table.columns["label"].mean() == pytest.approx(rate, abs=1e-4)
    assert set(np.unique(table.columns["label"])) <= {0.0, 1.0}
    assert (len(schema.sparse), len(schema.dense)) == (n_sparse, n_dense)
    for f in schema.sparse:
        ids = np.asarray(table.columns[f.name])
        assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < f.vocab_size
        assert f.description, f"field {f.name} has no description"
    for f in schema.dense:
        x = np.asarray(table.columns[f.name])
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        assert f.description
    assert sum(len(v) for v in prepared.splits.values()) == rows


def test_kuairand_counts_are_real_dense_values(msr_sample: Callable[[str], Path], cache_root: Path) -> None:
    raw = msr_sample("kuairand")
    table = prepare("kuairand-1k", raw, root=cache_root).table
    assert [f.name for f in table.schema.dense] == ["follow_user_num", "fans_user_num", "friend_user_num",
                                                    "register_days"]
    assert "tab" not in table.columns  # the scenario field is not an input feature
    fans = pl.read_csv(raw / "kuairand_sample.csv")["fans_user_num"].to_numpy().astype(float)
    expected = (fans - fans.min()) / (fans.max() - fans.min())
    np.testing.assert_allclose(table.columns["fans_user_num"], expected, rtol=1e-6)
    # the paper's behaviour (first-appearance ids, min-max) stays available
    ids = read_kuairand(raw, counts="ids").table.columns["fans_user_num"]
    assert not np.allclose(ids, expected)


def test_ali_ccp_fixed_splits_follow_the_files(msr_sample: Callable[[str], Path], cache_root: Path) -> None:
    raw = msr_sample("ali-ccp")
    prepared = prepare("ali-ccp", raw, root=cache_root, split_seed=1)
    assert {k: len(v) for k, v in prepared.splits.items()} == {"train": 100, "val": 50, "test": 50}
    np.testing.assert_array_equal(prepared.splits["val"], np.arange(100, 150))
    test = pl.read_csv(raw / "ali_ccp_test_sample.csv")
    part = prepared.part("test")
    np.testing.assert_array_equal(part.columns["label"], test["click"].to_numpy())
    np.testing.assert_array_equal(part.columns["scenario"], test["301"].to_numpy() - 1)
    assert "301" in [f.name for f in prepared.table.schema.sparse]  # stays an input feature


def test_douban_default_order_is_the_run_scripts(msr_sample: Callable[[str], Path], cache_root: Path) -> None:
    raw = msr_sample("douban")
    domain = pl.read_csv(raw / "douban_sample.csv")["domain"].to_numpy()
    scenario = prepare("douban", raw, root=cache_root).table.columns["scenario"]
    assert set(domain[scenario == 1]) == {"music"} and set(domain[scenario == 2]) == {"movie"}
    other = read_douban(raw, order=PROCESS_SCRIPT_ORDER).table.columns["scenario"]
    assert set(domain[other == 1]) == {"movie"} and set(domain[other == 2]) == {"music"}
    with pytest.raises(ConfigError, match="permutation"):
        read_douban(raw, order=("book", "movie"))


# ------------------------------------------------------------------------------ raw KuaiRand files

LOG_HEADER = ("user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,"
              "long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab")
USER_HEADER = ("user_id,user_active_degree,is_lowactive_period,is_live_streamer,is_video_author,follow_user_num,"
               "follow_user_num_range,fans_user_num,fans_user_num_range,friend_user_num,friend_user_num_range,"
               "register_days,register_days_range," + ",".join(f"onehot_feat{i}" for i in range(18)))
VIDEO_HEADER = ("video_id,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,server_width,"
                "server_height,music_id,music_type,tag")


def write_kuairand_raw(folder: Path, tabs: tuple[int, ...] = (1, 0, 4, 2, 6, 3, 1)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    log = [LOG_HEADER]
    for i, tab in enumerate(tabs):
        user, video = i % 3, (4305, 1201, 8732)[i % 3]
        log.append(f"{user},{video},20220422,1500,16506{i:02d}000000.0,{i % 2},0,0,0,0,0,0,{4000 + i},"
                   f"15000,0,0,0,0,{tab}")
    log.append("2,99999,20220423,1600,1650700000000.0,1,0,0,0,0,0,0,9000,15000,0,0,0,0,1")  # video not in features
    (folder / "log_standard_4_22_to_5_08_1k.csv").write_text("\n".join(log) + "\n")
    onehot = "0,1,17,638,2,7,3,0,0,0,0,0,1,0,0,0,0,0"
    users = [USER_HEADER,
             f"0,high_active,0,0,0,5,\"(0,10]\",0,0,0,0,60,61-90,{onehot}",
             f"1,full_active,0,0,1,40,\"(10,50]\",50,\"[10,100)\",3,\"[1,5)\",300,181-365,{onehot}",
             "2,middle_active,0,-124,0,500,\"(250,500]\",100,\"[100,1k)\",7,\"[5,30)\",1000,730+,"
             + onehot.replace(",638,", ",,")]  # a missing one-hot value: the script fills 1471
    (folder / "user_features_1k.csv").write_text("\n".join(users) + "\n")
    videos = [VIDEO_HEADER,
              "4305,3309,NORMAL,2022-04-16,ShortImport,1.0,15000.0,720.0,1280.0,,,2",
              "1201,117,NORMAL,2022-04-13,ShortImport,1.0,11000.0,,,1046,9.0,8",
              "8732,5,AD,2022-04-20,ShortCamera,,7000.0,1080.0,1920.0,,,28"]
    (folder / "video_features_basic_1k.csv").write_text("\n".join(videos) + "\n")
    return folder


def test_kuairand_raw_files(tmp_path: Path, cache_root: Path) -> None:
    raw = write_kuairand_raw(tmp_path / "raw")
    prepared = prepare("kuairand-1k", raw, root=cache_root)
    t = prepared.table
    assert len(t) == 6  # tab 3 and the unknown video are dropped
    assert prepared.meta["scenario_names"] == ["tab 0", "tab 1", "tab 2", "tab 4", "tab 6"]
    assert sorted(t.columns["scenario"].tolist()) == [0, 1, 1, 2, 3, 4]
    # fans 0/50/100 for users 0/1/2 -> 0/.5/1, real values rather than ids
    assert sorted(set(np.round(np.asarray(t.columns["fans_user_num"]), 4))) == [0.0, 0.5, 1.0]
    assert t.schema["onehot_feat3"].vocab_size == 2  # 638 and the filled 1471
    assert t.schema["server_width"].vocab_size == 3  # 720, 1080 and the filled 0
    top5 = read_kuairand(raw, tabs="top5")
    assert top5.meta["scenario_names"] == ["tab 0", "tab 1", "tab 2", "tab 3", "tab 4"]  # ties -> smaller tab
    assert len(top5.table) == 6
    assert len(read_kuairand(raw, tabs=(1, 3, 4, 6, 9)).table) == 5  # tabs 1, 1, 4, 6, 3


def test_kuairand_remapped_csv_needs_feature_mapping(tmp_path: Path) -> None:
    raw = write_kuairand_raw(tmp_path / "raw")
    # write what load_data_1k.py writes from these raw files: every column as first-appearance ids
    log = pl.read_csv(raw / "log_standard_4_22_to_5_08_1k.csv")
    users = pl.read_csv(raw / "user_features_1k.csv").fill_null(1471)
    videos = pl.read_csv(raw / "video_features_basic_1k.csv").fill_null(0)
    df = (log.select("user_id", "video_id", "is_click", "tab", "play_time_ms", "duration_ms", "profile_stay_time",
                     "comment_stay_time")
          .join(users, on="user_id").join(videos.select("video_id", "video_type", "visible_status", "server_width",
                                                        "server_height"), on="video_id"))
    out = tmp_path / "processed"
    (out / "feature_mapping").mkdir(parents=True)
    cols = {}
    for col in df.columns:
        if col == "is_click":
            cols[col] = df[col]
            continue
        values = df[col].unique(maintain_order=True).to_list()
        (out / "feature_mapping" / f"{col}.json").write_text(json.dumps({str(v): i for i, v in enumerate(values)}))
        cols[col] = df[col].replace_strict(values, list(range(len(values))))
    pl.DataFrame(cols).write_csv(out / "kuairand.csv")
    decoded = read_kuairand(out)
    assert decoded.meta["layout"] == "processed-remapped"
    assert decoded.meta["scenario_names"][0] == "first-appearance tab id 0"
    assert sorted(set(np.round(np.asarray(decoded.table.columns["fans_user_num"]), 4))) == [0.0, 0.5, 1.0]
    for p in (out / "feature_mapping").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"kuairand\.csv.*'follow_user_num'.*counts='ids'"):
        read_kuairand(out)
    assert len(read_kuairand(out, counts="ids").table) > 0


# ------------------------------------------------------------------------------ raw Ali-CCP files


def _features(pairs: Iterable[tuple[object, object]]) -> str:
    return "\x01".join(f"{field}\x02{feat}\x03{value}" for field, feat, value in pairs)


def write_aliccp_raw(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    common = {
        "bacff91692951881": [("101", "31319", "1.0"), ("121", "21", "1.0"), ("109_14", "44", "0.69"),
                             ("109_14", "45", "1.61"), ("150_14", "1001", "2.3")],
        "84dceed2e3ab8b3c": [("101", "82431", "1.0"), ("121", "22", "1.0"), ("109_14", "46", "0.4")],
    }
    for split, n in (("train", 36), ("test", 12)):
        lines = []
        for i in range(n):
            position = ("9351665", "9351666", "9351667")[(i // 4) % 3] if split == "train" else "9351666"
            click, purchase = (1, 0) if i % 5 == 0 else (0, 1) if i == 7 else (0, 0)
            feats = _features([("205", f"7{i:05d}", "1.0"), ("301", position, "1.0"), ("206", "8316", "1.0"),
                               ("508", "9356", f"{2.1 + i / 10:.4f}")])
            index = ("bacff91692951881", "84dceed2e3ab8b3c")[i % 2]
            lines.append(f"{i + 1},{click},{purchase},{index},4,{feats}")
        (folder / f"sample_skeleton_{split}.csv").write_text("\n".join(lines) + "\n")
        rows = [f"{k},{len(v)},{_features(v)}" for k, v in common.items()]
        (folder / f"common_features_{split}.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_aliccp_raw_files_follow_the_preprocess_script(tmp_path: Path, cache_root: Path) -> None:
    raw = write_aliccp_raw(tmp_path / "raw")
    prepared = prepare("ali-ccp", raw, root=cache_root)
    t = prepared.table
    # row 7 (click 0, purchase 1) is dropped from both files; the test file is cut 5 / 6
    assert {k: len(v) for k, v in prepared.splits.items()} == {"train": 35, "val": 5, "test": 6}
    train = prepared.part("train")
    # 301 feature ids get 1, 2, 3 in first-appearance order, hence scenarios 0, 1, 2
    assert train.columns["scenario"][:11].tolist() == [0] * 4 + [1] * 3 + [2] * 4  # row 7 dropped
    assert np.all(prepared.part("test").columns["scenario"] == 1)
    assert t.schema["205"].vocab_size == 1  # every item id seen < 10 times -> 0
    assert t.schema["101"].vocab_size == 2 and t.schema["206"].vocab_size == 1
    assert t.schema["109_14"].vocab_size == 2  # last repeated value wins: 45 (user 1) and 46 (user 2)
    d = np.asarray(t.columns["D109_14"])
    assert sorted(set(np.round(d, 4))) == [0.0, 1.0]
    assert np.asarray(t.columns["D853"]).max() == 0.0  # a field absent everywhere reads as 0
    assert train.columns["label"].sum() == 8  # rows 0, 5, ..., 35


# ------------------------------------------------------------------------------ raw Amazon files

REVIEW = ('{{"reviewerID": "{user}", "asin": "{item}", "reviewerName": "J. Doe", "helpful": [0, 0], '
          '"reviewText": "Works as described.", "overall": {overall}, "summary": "ok", '
          '"unixReviewTime": 1391040000, "reviewTime": "01 30, 2014"}}')


def write_amazon_raw(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    specs = {
        "Beauty": [("A1YJEY40YUW4SE", "7806397051", 5.0), ("A60XNB876KYML", "7806397051", 3.0)],
        "Clothing_Shoes_and_Jewelry": [("A1KLRMWW2FWPL4", "0000031887", 4.0), ("A1YJEY40YUW4SE", "B00A0GS5L2", 1.0),
                                       ("A2G5TCU2WDFZ65", "0000031887", 5.0)],
        "Health_and_Personal_Care": [("ALC5GH8CAMAI7", "159985130X", 2.0)],
    }
    for category, rows in specs.items():
        text = "\n".join(REVIEW.format(user=u, item=i, overall=o) for u, i, o in rows) + "\n"
        path = folder / f"reviews_{category}_5.json"
        if category == "Clothing_Shoes_and_Jewelry":
            path.with_suffix(".json.gz").write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
    return folder


def test_amazon_raw_json_and_processed_csv(tmp_path: Path, cache_root: Path) -> None:
    t = prepare("amazon-5core", write_amazon_raw(tmp_path / "raw"), root=cache_root).table
    assert t.columns["scenario"].tolist() == [0, 0, 1, 1, 1, 2]
    assert t.columns["label"].tolist() == [1, 0, 1, 0, 1, 0]
    assert t.schema["user"].vocab_size == 5 and t.schema["item"].vocab_size == 4
    csv = tmp_path / "csv"
    csv.mkdir()
    (csv / "amazon.csv").write_text("user,item,label,domain_indicator\nA1,B1,1,0\nA2,B1,0,2\nA1,B2,1,1\n")
    t2 = prepare("amazon-5core", csv, root=cache_root).table
    assert t2.columns["scenario"].tolist() == [0, 2, 1] and t2.schema.num_scenarios == 3


# ------------------------------------------------------------------------------ raw Douban files


def write_douban_raw(folder: Path) -> Path:
    folder = folder / "douban_dataset(text information)"
    folder.mkdir(parents=True)
    (folder / "users_cleaned.txt").write_text(
        '"UID"\t"living_place"\t"join_time"\t"self_statement"\t"user_id"\n'
        "1\t北京\t2007-07-10\t读书\tstar\n2\t\t2005-03-20\t\tbook_lover\n3\t上海\t2011-05-01\thi\tzz\n")
    header = '"user_id"\t"{0}_id"\t"rating"\t"labels"\t"comment"\t"time"\t"ID"\n'
    (folder / "bookreviews_cleaned.txt").write_text(
        header.format("book") + "1\t10\t5\t小说\t好看\t2009-01-01\t1\n2\t12\t3\t\t一般\t2010-02-02\t2\n")
    (folder / "moviereviews_cleaned.txt").write_text(
        header.format("movie") + "1\t10\t4\t剧情\t不错\t2009-01-02\t3\n3\t5\t2\t\t\t2012-03-03\t4\n")
    (folder / "musicreviews_cleaned.txt").write_text(header.format("music") + "2\t3\t5\t\t好听\t2011-01-01\t5\n")
    return folder.parent


def test_douban_raw_files(tmp_path: Path, cache_root: Path) -> None:
    prepared = prepare("douban", write_douban_raw(tmp_path / "raw"), root=cache_root)
    t = prepared.table
    assert t.columns["label"].tolist() == [1, 0, 1, 0, 1]
    assert t.columns["scenario"].tolist() == [0, 0, 2, 2, 1]  # book 0, music 1, movie 2
    assert t.schema["item_id"].vocab_size == 5  # book 10 and movie 10 are different items after the offset
    assert t.schema["living_place"].vocab_size == 3  # 北京, 上海, unknown
    assert t.schema["time_bin"].vocab_size == 3  # 2007-07 -> 27, 2011-05 -> 73, 2005-03-20 -> unknown


# ------------------------------------------------------------------------------ raw MIND files

NEWS_ROWS = [
    ("N55528", "lifestyle", "lifestyleroyals"), ("N19639", "health", "weightloss"),
    ("N61837", "news", "newsworld"), ("N53526", "sports", "football_nfl"), ("N38324", "finance", "finance-real-estate"),
]


def write_mind_raw(folder: Path) -> Path:
    for split, behaviors in (
        ("MINDlarge_train", ["1\tU13740\t11/11/2019 9:05:58 AM\tN55189 N42782\tN55528-1 N19639-0 N61837-0",
                             "2\tU91836\t11/12/2019 6:11:30 PM\t\tN53526-0 N38324-1"]),
        ("MINDlarge_dev", ["1\tU13740\t11/15/2019 8:55:22 AM\tN55189\tN61837-1 N99999-0"]),
    ):
        d = folder / split
        d.mkdir(parents=True)
        (d / "behaviors.tsv").write_text("\n".join(behaviors) + "\n")
        news = [f'{n}\t{c}\t{s}\tA title with "quotes"\tAn abstract.\thttps://assets.msn.com/labs/mind/AAGH0ET.html\t'
                f'[{{"Label": "Prince Philip", "Type": "P"}}]\t[]' for n, c, s in NEWS_ROWS]
        (d / "news.tsv").write_text("\n".join(news) + "\n")
    return folder


def test_mind_raw_folders(tmp_path: Path, cache_root: Path) -> None:
    t = prepare("mind", write_mind_raw(tmp_path / "raw"), root=cache_root).table
    # health and the unknown news id are dropped
    assert t.columns["scenario"].tolist() == [1, 0, 2, 3, 0]
    assert t.columns["label"].tolist() == [1, 0, 0, 1, 1]
    assert t.schema["User_ID"].vocab_size == 2 and t.schema.num_scenarios == 4


def test_mind_test_split_without_labels_is_refused(tmp_path: Path) -> None:
    raw = write_mind_raw(tmp_path / "raw")
    (raw / "MINDlarge_dev" / "behaviors.tsv").write_text("1\tU1\t11/15/2019 8:55:22 AM\t\tN61837 N53526\n")
    with pytest.raises(DataError, match=r"behaviors\.tsv.*'impressions'.*N61837"):
        prepare("mind", raw, use_cache=False)


# ------------------------------------------------------------------------------ bad input


def _edit_csv(path: Path, edit: Any) -> None:
    df = pl.read_csv(path, infer_schema=False)
    edit(df).write_csv(path)


def _set(col: str, row: int, value: object) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(col))
                                      .alias(col))


BAD = [
    # (id, sample folder, dataset, file, edit, words the message must contain)
    ("missing-column", "kuairand", "kuairand-1k", "kuairand_sample.csv", lambda df: df.drop("tab"), ["'tab'"]),
    ("missing-column", "ali-ccp", "ali-ccp", "ali_ccp_val_sample.csv", lambda df: df.drop("D508"), ["'D508'"]),
    ("empty-file", "mind", "mind", "mind_sample.csv", "empty", ["empty"]),
    ("empty-file", "douban", "douban", "douban_sample.csv", "header-only", ["no rows"]),
    ("non-numeric-label", "douban", "douban", "douban_sample.csv", _set("rating", 3, "good"), ["'rating'", "good"]),
    ("non-numeric-label", "mind", "mind", "mind_sample.csv", _set("label", 5, "yes"), ["'label'", "yes"]),
    ("unknown-scenario", "ali-ccp", "ali-ccp", "ali_ccp_test_sample.csv", _set("301", 4, "4"), ["'301'", "4"]),
    ("unknown-scenario", "douban", "douban", "douban_sample.csv", _set("domain", 10, "video"), ["'domain'", "video"]),
    ("nan-feature", "kuairand", "kuairand-1k", "kuairand_sample.csv", _set("fans_user_num", 7, None),
     ["'fans_user_num'"]),
    ("nan-feature", "ali-ccp", "ali-ccp", "ali_ccp_train_sample.csv", _set("D509", 2, "NaN"), ["'D509'"]),
    ("nan-feature", "mind", "mind", "mind_sample.csv", _set("News_ID", 0, None), ["'News_ID'"]),
]


@pytest.mark.parametrize(("case", "folder", "name", "file", "edit", "words"), BAD,
                         ids=[f"{b[0]}-{b[1]}" for b in BAD])
def test_bad_input_is_a_data_error_and_caches_nothing(case: str, folder: str, name: str, file: str, edit: Any,
                                                      words: list[str], msr_sample: Callable[[str], Path],
                                                      cache_root: Path) -> None:
    raw = msr_sample(folder)
    path = raw / file
    if edit == "empty":
        path.write_text("")
    elif edit == "header-only":
        path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    else:
        _edit_csv(path, edit)
    with pytest.raises(DataError) as info:
        prepare(name, raw, root=cache_root)
    message = str(info.value)
    assert file in message
    for word in words:
        assert word in message
    prepared = cache_root / "prepared"
    assert not prepared.exists() or list(prepared.iterdir()) == []  # no entry, no temp leftovers


def test_missing_raw_files_name_what_is_expected(tmp_path: Path) -> None:
    empty = tmp_path / "raw"
    empty.mkdir()
    for name, words in (("kuairand-1k", "log_standard_4_22_to_5_08_1k.csv"), ("ali-ccp", "tianchi.aliyun.com"),
                        ("amazon-5core", "reviews_"), ("douban", "kaggle.com"), ("mind", "MINDlarge_train")):
        with pytest.raises(DataError, match=words):
            prepare(name, empty, use_cache=False)


def test_kuairand_options_are_validated(msr_sample: Callable[[str], Path]) -> None:
    raw = msr_sample("kuairand")
    with pytest.raises(ConfigError, match="'counts'"):
        read_kuairand(raw, counts="raw")
    with pytest.raises(ConfigError, match="five distinct"):
        read_kuairand(raw, tabs=(1, 2))
    with pytest.raises(DataError, match=r"kuairand_sample\.csv.*'tab'.*top5"):
        read_kuairand(raw, tabs="top5")  # the sample holds tab 1 only
