"""Every outcome a WARC record can end in, in pipeline order.

Each record read ends in exactly one of these; a manifest's counts sum to records read.
Quality rejections are `quality_<rule>`, with rules listed in corpus.quality.RULES.
"""
from corpus.quality import RULES
from corpus.warc_reader import (CORRUPT_RECORD, EMPTY_PAYLOAD, HTTP_STATUS_NOT_200, NOT_HTML,
                                NOT_RESPONSE, PAGE_TOO_LARGE)

# Cheap-first skips (corpus.prefilter): decided before extraction.
DUPLICATE_URL_IN_FILE = "duplicate_url_in_file"
DUPLICATE_HTML_IN_FILE = "duplicate_html_in_file"
PREFILTER_LANG_NOT_WANTED = "prefilter_lang_not_wanted"
# Extraction (corpus.extract).
EXTRACTION_TIMEOUT = "extraction_timeout"
EXTRACTION_ERROR = "extraction_error"
EXTRACTION_EMPTY = "extraction_empty"
# Language ID (corpus.langid).
LANG_NOT_WANTED = "lang_not_wanted"
LANG_LOW_SCORE = "lang_low_score"
KEPT = "kept"

ALL = [NOT_RESPONSE, HTTP_STATUS_NOT_200, NOT_HTML, EMPTY_PAYLOAD, PAGE_TOO_LARGE, CORRUPT_RECORD,
       DUPLICATE_URL_IN_FILE, DUPLICATE_HTML_IN_FILE, PREFILTER_LANG_NOT_WANTED,
       EXTRACTION_TIMEOUT, EXTRACTION_ERROR, EXTRACTION_EMPTY, LANG_NOT_WANTED, LANG_LOW_SCORE,
       *[f"quality_{r}" for r in RULES], KEPT]
