"""tasks.parse: every accepted format and encoding, file-level errors, hostile files."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import struct
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import openpyxl.xml.functions
import pandas as pd
import pytest

from supplyline.errors import FileRejected
from supplyline.settings import ReadLimits
from tasks.parse import (
    ERROR_FILE_COLUMNS,
    _CsvLayout,
    _parse_csv_arrow,
    _parse_csv_exact,
    _parse_csv_pandas,
    neutralise_formula,
    read_table,
    restore_formula,
)

SHEET_XML = "xl/worksheets/sheet1.xml"


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def rows(frame: pd.DataFrame) -> dict[int, list[str]]:
    """Row number → values, so that one assertion checks numbering and values together."""
    return {
        int(number): list(values) for number, values in zip(frame.index, frame.values, strict=True)
    }


def rejected(
    path: Path, *, sheet: str | None = None, limits: ReadLimits | None = None
) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        read_table(path, sheet=sheet, limits=limits)
    return caught.value


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def catalog_workbook(path: Path) -> Path:
    """A workbook as suppliers send them: UPCs as text and as zero-padded numbers, dates."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Products"
    sheet.append(["sku", "upc_text", "upc_number", "price", "qty", "available", "updated", "live"])
    sheet.append(
        [
            "A1",
            "012345678905",
            12345678905,
            19.99,
            12.0,
            datetime(2024, 3, 1),
            datetime(2024, 3, 1, 13, 45),
            True,
        ]
    )
    sheet["C2"].number_format = "000000000000"
    sheet.append([])
    sheet.append(
        ["A2", "4006381333931", 4006381333931.0, 0.00001, 7, date(2025, 1, 31), None, False]
    )
    notes = workbook.create_sheet("Notes")
    notes.append(["note"])
    notes.append(["read me"])
    workbook.save(path)
    return path


def lol_entities(levels: int = 9) -> str:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [
        f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">' for level in range(1, levels + 1)
    ]
    return "<!DOCTYPE worksheet [" + "".join(entities) + "]>"


def billion_laughs_workbook(tmp_path: Path) -> Path:
    source = catalog_workbook(tmp_path / "source.xlsx")
    members = zip_members(source)
    members[SHEET_XML] = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        + lol_entities()
        + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'
        "</sheetData></worksheet>"
    ).encode()
    return write(tmp_path, "laughs.xlsx", zip_bytes(members))


# --- CSV: values, encodings, delimiters, row numbers -------------------------------------


def test_csv_values_stay_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", 'sku,upc,price,note\nA1,0012,12.50,NA\nA2,00,1e5," null "\n')
    table = read_table(path)
    assert (table.format, table.encoding, table.delimiter, table.compression) == (
        "csv",
        "utf-8",
        ",",
        None,
    )
    assert table.headers == ["sku", "upc", "price", "note"]
    assert rows(table.frame) == {
        2: ["A1", "0012", "12.50", "NA"],
        3: ["A2", "00", "1e5", " null "],
    }
    assert all(isinstance(value, str) for value in table.frame.to_numpy().ravel())
    assert table.notes == []


def test_csv_utf8_bom_is_not_part_of_the_first_header(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", codecs.BOM_UTF8 + "sku,name\nA1,Crème\n".encode())
    table = read_table(path)
    assert table.headers == ["sku", "name"]
    assert table.encoding == "utf-8-sig"
    assert rows(table.frame) == {2: ["A1", "Crème"]}


@pytest.mark.parametrize(
    ("bom", "codec"), [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")]
)
def test_csv_utf16_with_bom(tmp_path: Path, bom: bytes, codec: str) -> None:
    path = write(tmp_path, "c.csv", bom + "sku\tname\nA1\tCafé €\nA2\t日本\n".encode(codec))
    table = read_table(path)
    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert table.notes == ["encoding utf-16 (byte order mark)"]
    assert rows(table.frame) == {2: ["A1", "Café €"], 3: ["A2", "日本"]}


def test_csv_utf16_without_bom_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "sku,name\nA1,Größe\n".encode("utf-16-le"))
    table = read_table(path)
    assert table.encoding == "utf-16-le"
    assert table.notes == ["encoding utf-16-le detected (no byte order mark)"]
    assert rows(table.frame) == {2: ["A1", "Größe"]}


def test_csv_cp1252_is_detected(tmp_path: Path) -> None:
    text = "sku;name;price\nA1;Café crème;3,50 €\nA2;Señor “niño”;2,00 €\n"
    table = read_table(write(tmp_path, "c.csv", text.encode("cp1252")))
    assert table.encoding == "cp1252"
    assert table.notes == ["encoding cp1252 detected"]
    assert rows(table.frame) == {
        2: ["A1", "Café crème", "3,50 €"],
        3: ["A2", "Señor “niño”", "2,00 €"],
    }


def test_csv_non_utf8_bytes_late_in_the_file_are_found(tmp_path: Path) -> None:
    text = "sku,name\n" + "".join(f"A{n},plain\n" for n in range(20_000)) + "Z9,Crème brûlée\n"
    table = read_table(write(tmp_path, "c.csv", text.encode("cp1252")))
    assert table.encoding == "cp1252"
    assert table.frame.loc[20_002].tolist() == ["Z9", "Crème brûlée"]


def test_csv_cyrillic_cp1251_is_not_read_as_cp1252(tmp_path: Path) -> None:
    text = "sku,name\nA1,Чайник электрический\nA2,Кофемолка ручная\n"
    table = read_table(write(tmp_path, "c.csv", text.encode("cp1251")))
    assert table.encoding == "cp1251"
    assert rows(table.frame) == {2: ["A1", "Чайник электрический"], 3: ["A2", "Кофемолка ручная"]}


@pytest.mark.parametrize(("delimiter", "other"), [(";", ","), ("\t", ";"), ("|", ","), (",", ";")])
def test_csv_delimiter_is_sniffed(tmp_path: Path, delimiter: str, other: str) -> None:
    lines = [
        ["sku", "name", "price"],
        ["A1", f"Red{other} large", f"3{other}50"],
        ["A2", "Blue", "4"],
    ]
    text = "".join(delimiter.join(line) + "\n" for line in lines)
    table = read_table(write(tmp_path, "c.txt", text))
    assert table.delimiter == delimiter
    assert rows(table.frame) == {
        2: ["A1", f"Red{other} large", f"3{other}50"],
        3: ["A2", "Blue", "4"],
    }


def test_csv_delimiter_argument_is_the_fallback(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "sku\nA1\nA2\n")
    table = read_table(path, delimiter=";")
    assert table.delimiter == ";"
    assert table.notes == ["no delimiter detected; read as semicolon-separated"]
    assert rows(table.frame) == {2: ["A1"], 3: ["A2"]}
    assert read_table(path).delimiter == ","
    assert read_table(write(tmp_path, "d.csv", "sku;name\nA1;x\n"), delimiter=",").delimiter == ";"


def test_csv_quoted_newline_and_delimiter_are_one_row(tmp_path: Path) -> None:
    text = 'sku,description,price\nA1,"Line one\nline two, with comma",1\nA2,"He said ""hi""",2\n'
    table = read_table(write(tmp_path, "c.csv", text))
    assert rows(table.frame) == {
        2: ["A1", "Line one\nline two, with comma", "1"],
        3: ["A2", 'He said "hi"', "2"],
    }


def test_csv_blank_lines_keep_their_row_numbers(tmp_path: Path) -> None:
    text = "sku,name\r\nA1,x\r\n\r\n,\r\nA4,y\r\n\r\n"
    table = read_table(write(tmp_path, "c.csv", text))
    assert rows(table.frame) == {2: ["A1", "x"], 5: ["A4", "y"]}


def test_csv_whitespace_only_rows_and_columns_count_as_empty(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "c.csv", "sku,name,\n  ,\t, \nA1, x ,  \n"))
    assert table.headers == ["sku", "name"]
    assert rows(table.frame) == {3: ["A1", " x "]}


def test_csv_old_mac_line_endings(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "c.csv", "\r\rsku;name\rA1;x\r\rA2;y\r"))
    assert table.delimiter == ";"
    assert rows(table.frame) == {4: ["A1", "x"], 6: ["A2", "y"]}


def test_csv_blank_lines_before_the_header(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "c.csv", "\n\nsku,name\nA1,x\n"))
    assert table.headers == ["sku", "name"]
    assert rows(table.frame) == {4: ["A1", "x"]}


def test_csv_short_rows_are_padded(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "c.csv", "sku,name,price\nA1\nA2,x\nA3,y,3\n"))
    assert rows(table.frame) == {2: ["A1", "", ""], 3: ["A2", "x", ""], 4: ["A3", "y", "3"]}


def test_csv_parsers_agree_on_a_tricky_file(tmp_path: Path) -> None:
    """pyarrow, pandas and csv read the same records; only their speed differs."""
    text = '\n\nsku,name,note\nA1,"x\r\ny, z",\n\n"A2","abc""def",  \nA3,5" screen,\n,,\nA4,é,""\n'
    path = write(tmp_path, "c.csv", text)
    layout = _CsvLayout(",", skip=2, width=3)
    arrow = _parse_csv_arrow(path, "utf-8", layout)
    assert rows(arrow) == rows(_parse_csv_pandas(path, "utf-8", layout))
    exact = _parse_csv_exact(path, "utf-8", ",", ReadLimits())
    non_empty = {n: v for n, v in rows(arrow).items() if any(v)}
    expected = {
        3: ["sku", "name", "note"],
        4: ["A1", "x\r\ny, z", ""],
        6: ["A2", 'abc"def', "  "],
        7: ["A3", '5" screen', ""],
        9: ["A4", "é", ""],
    }
    assert rows(exact) == non_empty == expected


def test_text_after_a_closing_quote_is_kept_by_the_fast_parsers(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "c.csv", 'sku,name\nA1,"Red" large\n'))
    assert rows(table.frame) == {2: ["A1", "Red large"]}


# --- XLSX --------------------------------------------------------------------------------


def test_xlsx_cells_read_as_the_supplier_sees_them(tmp_path: Path) -> None:
    table = read_table(catalog_workbook(tmp_path / "catalog.xlsx"))
    assert (table.format, table.encoding, table.delimiter, table.compression) == (
        "xlsx",
        None,
        None,
        None,
    )
    assert table.headers == [
        "sku",
        "upc_text",
        "upc_number",
        "price",
        "qty",
        "available",
        "updated",
        "live",
    ]
    assert rows(table.frame) == {
        2: [
            "A1",
            "012345678905",
            "012345678905",
            "19.99",
            "12",
            "2024-03-01",
            "2024-03-01T13:45:00",
            "true",
        ],
        4: ["A2", "4006381333931", "4006381333931", "0.00001", "7", "2025-01-31", "", "false"],
    }
    assert table.notes == ['read sheet "Products", the first of 2']


def test_xlsx_named_sheet(tmp_path: Path) -> None:
    table = read_table(catalog_workbook(tmp_path / "catalog.xlsx"), sheet="Notes")
    assert table.headers == ["note"]
    assert rows(table.frame) == {2: ["read me"]}
    assert table.notes == []


def test_xlsx_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    error = rejected(catalog_workbook(tmp_path / "catalog.xlsx"), sheet="Catalog")
    assert 'no sheet named "Catalog"' in error.message
    assert '"Products", "Notes"' in error.message


def test_xlsx_rows_keep_their_sheet_numbers_and_empty_columns_go(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet["B3"] = "sku"
    sheet["C3"] = "name"
    sheet["B5"] = "A1"
    sheet["C5"] = "x"
    sheet["B9"] = "A2"
    sheet["F9"].number_format = "0.00"  # formatted but empty: Excel exports leave those
    workbook.save(tmp_path / "w.xlsx")
    table = read_table(tmp_path / "w.xlsx")
    assert table.headers == ["sku", "name"]
    assert rows(table.frame) == {5: ["A1", "x"], 9: ["A2", ""]}
    assert table.notes == ["1 column(s) without a header name and without values ignored"]


def test_xlsx_value_without_a_header_name_is_refused(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append(["sku", "name"])
    workbook.active.append(["A1", "x", "stray"])
    workbook.save(tmp_path / "w.xlsx")
    error = rejected(tmp_path / "w.xlsx")
    assert error.row == 1
    assert "Column C (column 3) has values (first in row 2) but no name" in error.message


def test_xlsx_detected_by_content_whatever_its_name(tmp_path: Path) -> None:
    data = catalog_workbook(tmp_path / "catalog.xlsx").read_bytes()
    table = read_table(write(tmp_path, "catalog.csv", data))
    assert table.format == "xlsx"
    assert rows(table.frame)[2][:3] == ["A1", "012345678905", "012345678905"]


def test_xlsx_inside_zip_and_gzip(tmp_path: Path) -> None:
    data = catalog_workbook(tmp_path / "catalog.xlsx").read_bytes()
    zipped = read_table(write(tmp_path, "catalog.zip", zip_bytes({"catalog.xlsx": data})))
    gzipped = read_table(write(tmp_path, "catalog.xlsx.gz", gzip.compress(data)))
    assert (zipped.format, zipped.compression) == ("xlsx", "zip")
    assert (gzipped.format, gzipped.compression) == ("xlsx", "gzip")
    assert rows(zipped.frame) == rows(gzipped.frame)
    assert rows(zipped.frame)[4][0] == "A2"


def test_corrupt_xlsx_is_refused(tmp_path: Path) -> None:
    data = catalog_workbook(tmp_path / "catalog.xlsx").read_bytes()
    error = rejected(write(tmp_path, "broken.xlsx", data[: len(data) // 2]))
    assert "cannot be opened" in error.message


def test_xlsx_with_a_damaged_sheet_is_refused(tmp_path: Path) -> None:
    members = zip_members(catalog_workbook(tmp_path / "catalog.xlsx"))
    members[SHEET_XML] = b"<worksheet><sheetData><row>"
    error = rejected(write(tmp_path, "broken.xlsx", zip_bytes(members)))
    assert "The .xlsx workbook cannot be read" in error.message


# --- JSON and JSON Lines -----------------------------------------------------------------


def test_json_array_keeps_numbers_as_written(tmp_path: Path) -> None:
    records = (
        '[{"sku": "A1", "price": 12.50, "qty": 0, "note": null, "live": true,'
        ' "dims": {"w": 1.0, "tags": ["a", 2]}},'
        ' {"sku": "A2", "price": 1E+2, "color": "red", "live": false}]'
    )
    table = read_table(write(tmp_path, "c.json", records))
    assert (table.format, table.encoding) == ("json", "utf-8")
    assert table.headers == ["sku", "price", "qty", "note", "live", "dims", "color"]
    assert rows(table.frame) == {
        2: ["A1", "12.50", "0", "", "true", '{"w":1.0,"tags":["a",2]}', ""],
        3: ["A2", "1E+2", "", "", "false", "", "red"],
    }


def test_json_empty_array_is_an_empty_table(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "c.json", "[]"))
    assert table.headers == []
    assert len(table.frame) == 0


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('{"products": [{"sku": "A1"}]}', 'an object (with keys "products")'),
        ("42", "a number (42)"),
        ('"sku"', 'a text ("sku")'),
    ],
)
def test_json_that_is_not_an_array_is_refused(tmp_path: Path, text: str, found: str) -> None:
    error = rejected(write(tmp_path, "c.json", text))
    assert f"The JSON file holds {found}; expected an array of objects" in error.message


def test_json_record_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    error = rejected(write(tmp_path, "c.json", '[{"sku": "A1"}, ["A2"]]'))
    assert error.row == 3
    assert "Record 2 of the JSON array (row 3) is an array" in error.message


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    error = rejected(write(tmp_path, "c.json", '[\n{"sku": "A1",}\n]'))
    assert "not valid JSON" in error.message
    assert "line 2, column 14" in error.message


def test_json_lines_skip_blank_lines_and_number_rows_by_line(tmp_path: Path) -> None:
    text = '{"sku": "A1", "price": 9.90}\n\n{"sku": "A2", "extra": [1, 2]}\r\n'
    table = read_table(write(tmp_path, "c.jsonl", text))
    assert table.format == "jsonl"
    assert table.headers == ["sku", "price", "extra"]
    assert rows(table.frame) == {2: ["A1", "9.90", ""], 4: ["A2", "", "[1,2]"]}


def test_json_lines_bad_line_is_named(tmp_path: Path) -> None:
    error = rejected(write(tmp_path, "c.jsonl", '{"sku": "A1"}\n{"sku": "A2"\n'))
    assert error.row == 3
    assert error.message.startswith("Line 2 is not valid JSON: Expecting ',' delimiter")


def test_json_format_sniffed_without_extension(tmp_path: Path) -> None:
    array = read_table(write(tmp_path, "feed", ' [{"sku": "A1"}]'))
    lines = read_table(write(tmp_path, "feed2", '{"sku": "A1"}\n{"sku": "A2"}\n'))
    assert (array.format, rows(array.frame)) == ("json", {2: ["A1"]})
    assert (lines.format, rows(lines.frame)) == ("jsonl", {2: ["A1"], 3: ["A2"]})


# --- compression -------------------------------------------------------------------------


def test_gzip_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv.gz", gzip.compress("sku;name\nA1;Crème\n".encode("cp1252")))
    table = read_table(path)
    assert (table.format, table.compression, table.encoding, table.delimiter) == (
        "csv",
        "gzip",
        "cp1252",
        ";",
    )
    assert rows(table.frame) == {2: ["A1", "Crème"]}


def test_zip_csv_ignores_os_clutter(tmp_path: Path) -> None:
    data = zip_bytes(
        {
            "export/catalog.csv": b"sku,name\nA1,x\n",
            "__MACOSX/export/._catalog.csv": b"\x00\x05",
            "export/.DS_Store": b"\x00",
        }
    )
    table = read_table(write(tmp_path, "upload.zip", data))
    assert (table.format, table.compression) == ("csv", "zip")
    assert rows(table.frame) == {2: ["A1", "x"]}


def test_zip_jsonl(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "u.zip", zip_bytes({"c.jsonl": b'{"sku": "A1"}\n'})))
    assert (table.format, table.compression, rows(table.frame)) == ("jsonl", "zip", {2: ["A1"]})


def test_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(b"sku,name\n" + b"A1,x\n" * 1000)
    error = rejected(write(tmp_path, "c.csv.gz", data[:40]))
    assert "compressed with gzip but cannot be decompressed" in error.message


def test_zip_with_two_files_is_refused(tmp_path: Path) -> None:
    data = zip_bytes({"a.csv": b"sku\nA1\n", "b.csv": b"sku\nB1\n"})
    error = rejected(write(tmp_path, "u.zip", data))
    assert 'holds 2 files ("a.csv", "b.csv"); it must hold exactly one' in error.message


def test_zip_with_no_file_is_refused(tmp_path: Path) -> None:
    error = rejected(write(tmp_path, "u.zip", zip_bytes({"folder/": b""})))
    assert "The zip archive holds no data file" in error.message


def test_corrupt_zip_is_refused(tmp_path: Path) -> None:
    data = zip_bytes({"a.csv": b"sku\nA1\n" * 100})
    error = rejected(write(tmp_path, "u.zip", data[:30]))
    assert "cannot be opened" in error.message


@pytest.mark.parametrize(
    ("members", "looks_like"),
    [
        ({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}, "not an Excel"),
        ({"mimetype": b"application/vnd.oasis", "content.xml": b"<c/>"}, "an OpenDocument"),
    ],
)
def test_other_office_files_are_refused(
    tmp_path: Path, members: dict[str, bytes], looks_like: str
) -> None:
    error = rejected(write(tmp_path, "catalog.xlsx", zip_bytes(members)))
    assert "not in a format we can read" in error.message
    assert looks_like in error.message


def test_archive_inside_an_archive_is_refused(tmp_path: Path) -> None:
    data = zip_bytes({"c.csv.gz": gzip.compress(b"sku\nA1\n")})
    error = rejected(write(tmp_path, "u.zip", data))
    assert "archive inside an archive" in error.message


# --- file-level errors -------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"  \r\n\t\n", codecs.BOM_UTF8 + b"\n"])
def test_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    error = rejected(write(tmp_path, "c.csv", content))
    assert error.message.startswith("The file is empty")


def test_only_delimiters_is_an_empty_file(tmp_path: Path) -> None:
    assert rejected(write(tmp_path, "c.csv", ",,,\n,,,\n")).message.startswith("The file is empty")


def test_header_only_is_an_empty_table(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "c.csv", "sku,name,price\n"))
    assert table.headers == ["sku", "name", "price"]
    assert len(table.frame) == 0


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "an Excel 97-2003 workbook (.xls)"),
        (b"\x00\x01\x02\x03binary\x00\x00", "it is not text, a workbook or JSON"),
    ],
)
def test_unknown_format_lists_the_accepted_ones(
    tmp_path: Path, content: bytes, looks_like: str
) -> None:
    error = rejected(write(tmp_path, "catalog.csv", content))
    assert "not in a format we can read" in error.message
    assert looks_like in error.message
    assert "Excel workbook (.xlsx), JSON array of objects (.json), JSON Lines" in error.message


def test_duplicate_headers_are_named(tmp_path: Path) -> None:
    error = rejected(write(tmp_path, "c.csv", "sku,name,SKU ,price,name\nA1,x,A1,1,y\n"))
    assert error.row == 1
    assert '"sku" in columns A, C; "name" in columns B, E' in error.message


def test_missing_header_name_is_named(tmp_path: Path) -> None:
    error = rejected(write(tmp_path, "c.csv", "sku,,price\nA1,,1\nA2,x,2\n"))
    assert error.row == 1
    assert "Column B (column 2) has values (first in row 3) but no name" in error.message


def test_empty_unnamed_columns_are_dropped(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "c.csv", "sku,,name,,\nA1,,x,,\nA2,,y,,\n"))
    assert table.headers == ["sku", "name"]
    assert rows(table.frame) == {2: ["A1", "x"], 3: ["A2", "y"]}


def test_row_with_too_many_fields_is_named(tmp_path: Path) -> None:
    text = 'sku,name,price\nA1,"two\nlines",1\nA2,Red, large,2\n'
    error = rejected(write(tmp_path, "c.csv", text))
    assert error.row == 3
    assert error.message.startswith("Row 3 has 4 values but the header has 3 columns")
    assert "contains the delimiter (comma) without being quoted" in error.message


def test_quote_never_closed_is_named(tmp_path: Path) -> None:
    error = rejected(write(tmp_path, "c.csv", 'sku,name\nA1,x\nA2,"Red\nA3,y\n'))
    assert error.row == 3
    assert "A quoted value that starts in row 3 is never closed" in error.message


def test_too_many_columns(tmp_path: Path) -> None:
    header = ",".join(f"c{n}" for n in range(6))
    error = rejected(
        write(tmp_path, "c.csv", header + "\n" + "1," * 5 + "1\n"), limits=ReadLimits(max_columns=5)
    )
    assert error.message.startswith("Row 1 has 6 columns; at most 5 are accepted")


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "sku\n" + "A1\n" * 1000)
    error = rejected(path, limits=ReadLimits(max_bytes=1000))
    assert "more than the limit of 1000 bytes" in error.message


# --- hostile files -----------------------------------------------------------------------


def test_gzip_bomb_stops_at_max_bytes(tmp_path: Path) -> None:
    bomb = gzip.compress(b"sku\n" + b"0" * 8 * 1024 * 1024, compresslevel=9)
    assert len(bomb) < 20_000
    path = write(tmp_path, "c.csv.gz", bomb)
    error = rejected(path, limits=ReadLimits(max_bytes=2 * 1024 * 1024, max_inflate_ratio=10**6))
    assert (
        "The gzip file decompresses to more than 2.0 MB, the largest file accepted" in error.message
    )


def test_gzip_bomb_stops_at_inflate_ratio(tmp_path: Path) -> None:
    bomb = gzip.compress(b"sku\n" + b"0" * 8 * 1024 * 1024, compresslevel=9)
    path = write(tmp_path, "c.csv.gz", bomb)
    error = rejected(path, limits=ReadLimits(max_bytes=10**9, max_inflate_ratio=50))
    assert "more than 50 times its compressed size" in error.message
    assert "zip bombs" in error.message


def test_zip_bomb_is_refused_by_its_declared_size(tmp_path: Path) -> None:
    path = write(tmp_path, "u.zip", zip_bytes({"c.csv": b"sku\n" + b"0" * 8 * 1024 * 1024}))
    error = rejected(path, limits=ReadLimits(max_bytes=2 * 1024 * 1024))
    assert '"c.csv" in the archive decompresses to more than 2.0 MB' in error.message


def test_zip_bomb_that_understates_its_size_is_refused(tmp_path: Path) -> None:
    """The sizes in a zip's headers are not trusted: the inflated bytes are counted."""
    data = bytearray(zip_bytes({"c.csv": b"sku\n" + b"0" * 8 * 1024 * 1024}))
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 100)
    struct.pack_into("<I", data, central + 24, 100)
    path = write(tmp_path, "u.zip", bytes(data))
    error = rejected(path, limits=ReadLimits(max_bytes=2 * 1024 * 1024))
    assert "cannot be opened (Bad CRC-32 for file 'c.csv')" in error.message


def test_xlsx_bomb_is_refused_before_parsing(tmp_path: Path) -> None:
    members = zip_members(catalog_workbook(tmp_path / "catalog.xlsx"))
    members["xl/media/image1.png"] = b"\x00" * 8 * 1024 * 1024
    path = write(tmp_path, "bomb.xlsx", zip_bytes(members))
    error = rejected(path, limits=ReadLimits(max_bytes=4 * 1024 * 1024))
    assert "decompresses to more than 4.0 MB" in error.message
    ratio_error = rejected(path, limits=ReadLimits(max_inflate_ratio=20))
    assert "more than 20 times its compressed size" in ratio_error.message


def test_xlsx_entity_expansion_is_refused(tmp_path: Path) -> None:
    error = rejected(billion_laughs_workbook(tmp_path))
    assert f'part "{SHEET_XML}" declares XML entities' in error.message


def test_openpyxl_parses_workbooks_with_defusedxml(tmp_path: Path) -> None:
    """The second guard behind the scan for <!ENTITY: openpyxl itself refuses entities."""
    assert openpyxl.DEFUSEDXML is True
    assert openpyxl.xml.functions.iterparse.__module__.startswith("defusedxml")
    with pytest.raises(ValueError) as caught:
        openpyxl.load_workbook(billion_laughs_workbook(tmp_path), read_only=True, data_only=True)
    assert type(caught.value.__cause__).__name__ == "EntitiesForbidden"


def test_giant_field_names_row_and_column(tmp_path: Path) -> None:
    text = "sku,description\nA1,short\nA2," + "x" * 500 + "\n"
    error = rejected(write(tmp_path, "c.csv", text), limits=ReadLimits(max_field_chars=100))
    assert error.row == 3
    assert error.message.startswith(
        'Row 3, column B ("description"): the value is 500 characters long; at most 100'
    )


def test_field_limit_counts_characters_not_bytes(tmp_path: Path) -> None:
    """100 two-byte letters are 200 bytes and 100 characters: within a limit of 100."""
    path = write(tmp_path, "c.csv", "sku,description\nA1," + "é" * 100 + "\nA2,ok\n")
    assert rows(read_table(path, limits=ReadLimits(max_field_chars=100)).frame)[2][1] == "é" * 100
    error = rejected(path, limits=ReadLimits(max_field_chars=99))
    assert 'Row 2, column B ("description"): the value is 100 characters long' in error.message


def test_giant_field_in_a_file_only_the_csv_module_reads(tmp_path: Path) -> None:
    """An empty row wider than the header stops pyarrow and pandas, not the csv module."""
    path = write(tmp_path, "c.csv", "sku,description\n,,,,\nA2," + "x" * 500 + "\n")
    error = rejected(path, limits=ReadLimits(max_field_chars=100))
    assert error.row == 3
    assert 'Row 3, column B ("description"): the value is 500 characters long' in error.message
    assert rows(read_table(path).frame) == {3: ["A2", "x" * 500]}


def test_giant_field_in_json(tmp_path: Path) -> None:
    text = json.dumps([{"sku": "A1"}, {"sku": "A2", "name": "y" * 300}])
    error = rejected(write(tmp_path, "c.json", text), limits=ReadLimits(max_field_chars=100))
    assert error.message.startswith('Row 3, column B ("name"): the value is 300 characters')


# --- files sent back after an error file -------------------------------------------------


def test_error_file_columns_dropped_and_formulas_restored(tmp_path: Path) -> None:
    text = "_row,sku,formula,price,_errors\n2,A1,'=SUM(A1),'-5,price: not a number\n3,A2,'ok,'@x,\n"
    table = read_table(write(tmp_path, "errors.csv", text))
    assert table.headers == ["sku", "formula", "price"]
    assert rows(table.frame) == {2: ["A1", "=SUM(A1)", "-5"], 3: ["A2", "'ok", "@x"]}
    assert table.notes == ["error-file columns _row, _errors ignored"]
    assert ERROR_FILE_COLUMNS == ("_row", "_errors")


@pytest.mark.parametrize(
    ("value", "neutralised"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-5", "'-5"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=already", "''=already"),
        ("plain", "plain"),
        ("'quoted", "'quoted"),
        ("", ""),
        ("'", "'"),
    ],
)
def test_neutralise_and_restore_round_trip(value: str, neutralised: str) -> None:
    assert neutralise_formula(value) == neutralised
    assert restore_formula(neutralised) == value
