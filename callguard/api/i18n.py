"""The pages' two languages (issue #15): Japanese first, English on request. Pure: the
request's facts in (a `?lang=` switch, the remembered choice, `Accept-Language`), a language
out; every visible label, heading, button and message of the recordings, sign-in and overview
pages in both languages, looked up by key."""

from __future__ import annotations

import unicodedata
from typing import Literal

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = ("ja", "en")
DEFAULT: Lang = "ja"  # the users are Japanese offices
COOKIE = "cg_lang"  # the switch's choice, remembered under /ui


def known(value: str | None) -> Lang | None:
    tag = (value or "").strip().lower().split("-")[0]
    return tag if tag in LANGS else None


def from_accept_language(header: str | None) -> Lang | None:
    """The first of our languages the browser prefers (highest q, then order); None: none."""
    best: tuple[float, int, Lang] | None = None
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        lang = known(tag)
        if lang is None:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and (best is None or (-q, i) < (-best[0], best[1])):
            best = (q, i, lang)
    return None if best is None else best[2]


def negotiate(switch: str | None, remembered: str | None, accept_language: str | None) -> Lang:
    """The switch wins, then the remembered choice, then Accept-Language, then Japanese."""
    return (known(switch) or known(remembered) or from_accept_language(accept_language)
            or DEFAULT)


def other(lang: Lang) -> Lang:
    return "en" if lang == "ja" else "ja"


# key -> (Japanese, English). `{name}` fields are filled by `t`.
TEXT: dict[str, tuple[str, str]] = {
    "switch": ("English", "日本語"),  # the link to the other language, in that language
    "switch_label": ("表示言語", "Language"),
    "site_nav": ("ページ", "Pages"),
    "nav_recordings": ("録音一覧", "Recordings"),
    "nav_overview": ("概要", "Overview"),
    # sign-in
    "login_title": ("録音一覧: サインイン", "Recordings: sign in"),
    "login_token": ("契約トークン", "Contract token"),
    "login_button": ("サインイン", "Sign in"),
    "login_hint": ("契約トークンは運用担当者が発行します（{cmd}）。",
                   "Your operator gives you a contract token ({cmd})."),
    "login_expired": ("サインインの画面の有効期限が切れました。もう一度お試しください。",
                      "The sign-in form expired: please try again."),
    "login_unknown": ("トークンが正しくありません。", "Unknown token."),
    "login_operator": ("このページは契約ごとのページです。契約トークンでサインインしてください。",
                       "This page is per contract: sign in with a contract token."),
    "sign_out": ("サインアウト", "Sign out"),
    # recordings page
    "rec_title": ("録音一覧（契約 {code}）", "Recordings of {code}"),
    "rec_heading": ("録音一覧 契約", "Recordings of contract"),
    "filters": ("絞り込み条件", "Filters"),
    "f_number": ("自番号", "Our number"),
    "f_all": ("すべて", "all"),
    "f_remote": ("相手先番号", "Other party"),
    "f_remote_hint": ("相手先の電話番号（ハイフン可）、非通知は「非通知」",
                      "the other party's number (hyphens allowed), or \"anonymous\""),
    "f_direction": ("方向", "Direction"),
    "f_both": ("両方", "both"),
    "f_since": ("開始日時（以降）", "From"),
    "f_until": ("開始日時（より前）", "Until"),
    "f_apply": ("絞り込む", "Filter"),
    "f_clear": ("条件をクリア", "clear"),
    "f_offset": ("表示位置", "offset"),
    "f_invalid": ("「{field}」の値が正しくありません。", "{field}: invalid value."),
    "dir_in": ("着信", "in"),
    "dir_out": ("発信", "out"),
    "st_recording": ("録音中", "recording"),
    "st_complete": ("完了", "complete"),
    "st_failed": ("失敗", "failed"),
    "anonymous": ("非通知", "anonymous"),
    "unknown_party": ("不明", "unknown caller"),
    "th_started": ("開始日時（日本時間）", "Started (JST)"),
    "th_direction": ("方向", "Dir"),
    "th_number": ("自番号", "Our number"),
    "th_remote": ("相手先", "Other party"),
    "th_length": ("長さ", "Length"),
    "th_status": ("状態", "Status"),
    "th_audio": ("再生・ダウンロード", "Play / download"),
    "seconds": ("{s:.1f} 秒", "{s:.1f} s"),
    "paused": ("（一時停止 {n} 回）", "(paused {n}×)"),
    "call": ("{time} {remote}", "{time} {remote}"),
    "play": ("{call} の録音を再生", "play {call}"),
    "download": ("ダウンロード", "download"),
    "download_of": ("{call} の録音をダウンロード", "download {call}"),
    "in_progress": ("録音中…", "recording…"),
    "no_audio": ("音声なし（録音に失敗しました）", "no audio (failed)"),
    "enc_download": ("ダウンロード（暗号化済み .wav.age）", "download (encrypted, .wav.age)"),
    "enc_download_of": ("{call} の暗号化された録音をダウンロード",
                        "download the encrypted recording of {call}"),
    "enc_note": ("契約の公開鍵で暗号化されています。このサーバーでは復号も再生もできません。"
                 "お手元の秘密鍵で復号してください（例: {cmd}）。"
                 "sha256 は暗号化されたファイルの値です。",
                 "Encrypted with your contract's public key: this server cannot decrypt or "
                 "play it. Decrypt it with your private key, e.g. {cmd}; its sha256 is that "
                 "of the encrypted file."),
    "empty": ("条件に合う録音はありません。", "No recordings match."),
    "pages": ("ページ送り", "More recordings"),
    "newer": ("新しい録音へ", "newer"),
    "older": ("古い録音へ", "older"),
    # error pages
    "err_400": ("リクエストが正しくありません", "Bad request"),
    "err_401": ("サインインしてください", "Please sign in"),
    "err_403": ("この操作は許可されていません", "Not allowed"),
    "err_404": ("見つかりません", "Not found"),
    "err_416": ("要求された範囲がありません", "Range not satisfiable"),
    "err_other": ("エラーが発生しました", "Something went wrong"),
    "err_detail": ("詳細（英語）", "Details"),
    # overview page
    "ov_title": ("callguard 概要", "callguard overview"),
    "ov_login_title": ("callguard 概要: サインイン", "callguard overview: sign in"),
    "ov_login_heading": ("概要: サインイン", "Overview: sign in"),
    "ov_token": ("トークン（運用者または契約）", "Token (operator or contract)"),
    "ov_heading": ("概要", "Overview"),
    "ov_all": ("全契約", "All contracts"),
    "ov_contract": ("契約 {code}", "Contract {code}"),
    "ov_asof": ("{at} 日本時間現在。件数のみ表示します（電話番号は表示しません）。",
                "As of {at} JST. Counts only, never a number."),
    "ov_calls24": ("直近24時間の通話", "Calls, last 24 h"),
    "ov_rej14": ("拒否（14日）", "Rejections, 14 days"),
    "ov_rec14": ("録音（14日）", "Recordings, 14 days"),
    "ov_fb14": ("フォールバック（14日）", "Fallback, 14 days"),
    "ov_hourly": ("時間帯別の通話結果（24時間）", "Calls by outcome per hour (24 h)"),
    "ov_hourly_chart": ("時間帯別の通話件数", "calls per hour"),
    "ov_daily": ("日別の拒否と録音", "Rejections and recordings per day"),
    "ov_daily_chart": ("日別の件数", "per day"),
    "ov_fallback": ("フォールバックの発生", "Fallback events per day"),
    "ov_fallback_chart": ("日別のフォールバック件数", "fallback calls per day"),
    "ov_figures": ("数値", "Figures"),
    "ov_time": ("時間", "Time"),
    "ov_total": ("合計", "Total"),
}


_SEPARATORS = str.maketrans("", "", "-‐‑–—−ー() \t")
ANONYMOUS = ("非通知", "anonymous", "withheld")


def remote_query(raw: str) -> str:
    """What an office worker types for the other party, as the recordings store it (plain
    digits as presented, or "anonymous" when withheld): full-width digits and hyphens,
    spaces, brackets allowed; 「非通知」 means withheld."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if text.lower() in ANONYMOUS:
        return "anonymous"
    squeezed = text.translate(_SEPARATORS)
    return squeezed if squeezed.isdigit() or squeezed.startswith("+") else text


def t(lang: Lang, key: str, **fields: object) -> str:
    """The text `key` in `lang`, fields filled (plain text: escape it where it goes)."""
    ja, en = TEXT[key]
    text = ja if lang == "ja" else en
    return text.format(**fields) if fields else text
