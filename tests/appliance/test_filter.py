"""The content filter (issue 13, roles/filter): Rspamd is Postfix's milter on 25, 587 and 465.

Spam over the reject threshold is refused at the end of DATA; mail between the thresholds is
accepted, marked with the spam header and filed into Junk at delivery; inbound mail carries its
SPF/DKIM/DMARC results although the lab has no DNS; and while the filter is stopped every entry
answers 4xx (never accepted unscanned), after which the sender's retry is delivered exactly once.
"""

from __future__ import annotations

import io
import pathlib
import smtplib
import subprocess
import tarfile
import tempfile
import uuid
import zipfile

import clients
import pytest
import yaml
from conftest import PROJECT_DIR, imap_fetch, make_message, parse

# GTUBE and Rspamd's add-header test pattern (rspamd.com/doc/gtube_patterns.html; the lab's
# inventory enables the latter with filter_test_patterns).
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_ADD_HEADER = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
OUTSIDER = "van.thu@ubnd.example.org"
MILTER = "127.0.0.1:11332"  # the shared fact govmail_filter_milter
SPAM_HEADER = "X-Spam"  # the shared fact govmail_spam_header (roles/govmail/defaults/main.yml)


def send(client, sender: str, recipient: str, message) -> tuple[int, str]:
    """One SMTP transaction; (code, text) of the first refusal, or of the DATA reply when accepted."""
    for step in (lambda: client.mail(sender), lambda: client.rcpt(recipient)):
        code, text = step()
        if code >= 400:
            return code, text.decode()
    code, text = client.data(message.as_bytes())
    return code, text.decode()


def entry(name, smtp, submission, submissions, account):
    """(client, envelope sender) of one SMTP entry: another server on 25, the user on 587 / 465."""
    if name == "smtp":
        smtp.ehlo("mx.example.org")
        return smtp, OUTSIDER
    client = {"submission": submission, "submissions": submissions}[name]
    client.login(account["address"], account["password"])
    return client, account["address"]


ENTRIES = ["smtp", "submission", "submissions"]
# What each entry answers while the filter does not (milter_default_action = tempfail): Postfix
# refuses the first command after the greeting that it can refuse.
DEFERRED = {
    "smtp": (451, "4.7.1 Service unavailable - try again later"),
    "submission": (454, "4.3.0 Try again later"),
    "submissions": (454, "4.3.0 Try again later"),
}


def copies(inbox, message_id: str) -> int:
    """How many messages with this Message-ID INBOX holds, once the first has arrived."""
    clients.wait_for(lambda: imap_fetch(inbox, message_id), what=f"{message_id} in INBOX")
    _typ, data = inbox.search(None, "HEADER", "Message-ID", message_id)
    return len(data[0].split())


def test_gtube_is_refused_at_the_end_of_data(smtp, bob):
    smtp.ehlo("mx.example.org")
    message = make_message(OUTSIDER, bob["address"], "Khuyến mãi", f"Nội dung\n{GTUBE}\n")
    code, text = send(smtp, OUTSIDER, bob["address"], message)
    assert (code, text) == (554, "5.7.1 Gtube pattern")


def test_mail_between_the_thresholds_is_marked_and_filed_into_junk(smtp, imaps, bob):
    smtp.ehlo("mx.example.org")
    message = make_message(OUTSIDER, bob["address"], "Quảng cáo", f"Nội dung\n{GTUBE_ADD_HEADER}\n")
    assert send(smtp, OUTSIDER, bob["address"], message)[0] == 250
    inbox = imaps(bob)
    stored = clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"], "Junk"), what="the spam in Junk")
    assert parse(stored)[SPAM_HEADER] == "Yes"
    assert imap_fetch(inbox, message["Message-ID"]) is None


def test_a_spam_header_written_by_the_sender_is_removed_and_does_not_file_mail_into_junk(submission, imaps, alice, bob):
    submission.login(alice["address"], alice["password"])
    message = make_message(alice["address"], bob["address"], "Công văn", "Kính gửi anh chị.\n")
    message[SPAM_HEADER] = "Yes"
    assert send(submission, alice["address"], bob["address"], message)[0] == 250
    inbox = imaps(bob)
    stored = clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="the message in INBOX")
    assert parse(stored)[SPAM_HEADER] is None


def test_inbound_mail_is_accepted_without_dns_and_carries_its_spf_dkim_dmarc_results(smtp, imaps, bob, hostname):
    smtp.ehlo("mx.example.org")
    message = make_message(OUTSIDER, bob["address"], "Giấy mời họp", "Kính mời anh chị dự họp.\n")
    assert send(smtp, OUTSIDER, bob["address"], message)[0] == 250
    inbox = imaps(bob)
    stored = parse(clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="the message in INBOX"))
    results = str(stored["Authentication-Results"])
    assert results.startswith(hostname), results
    for method in ("spf=", "dmarc="):
        assert method in results, results


@pytest.fixture
def filter_stopped(mail_host):
    """Rspamd stopped for the test's first part; ``restart()`` brings it back (also on failure)."""
    assert mail_host.run("systemctl stop rspamd").rc == 0

    def restart():
        assert mail_host.run("systemctl start rspamd").rc == 0

    yield restart
    mail_host.run("systemctl start rspamd")
    clients.wait_for(lambda: mail_host.socket(f"tcp://{MILTER}").is_listening, what="Rspamd's milter")


def test_a_stopped_filter_defers_every_entry_and_the_retry_is_delivered_once(
    filter_stopped, address, hostname, port, tls, imaps, alice, bob
):
    def attempt(name, message):
        """One whole session as a client runs it; the first 4xx/5xx answer, or DATA's reply."""
        client = None
        try:
            if name == "submissions":
                client = clients.SMTP_SSL(address, hostname, port(name), tls)
            else:
                client = clients.SMTP(address, hostname, port(name))
            if name == "smtp":
                client.ehlo("mx.example.org")
                return send(client, OUTSIDER, bob["address"], message)
            client.ehlo("client.example")
            if name == "submission":
                client.starttls(context=tls)
                client.ehlo("client.example")
            client.login(alice["address"], alice["password"])
            return send(client, alice["address"], bob["address"], message)
        except smtplib.SMTPResponseException as error:
            return error.smtp_code, error.smtp_error.decode()
        finally:
            if client is not None:
                client.close()

    messages = {
        name: make_message(alice["address"], bob["address"], f"Thử lại qua {name}", "Nội dung.\n") for name in ENTRIES
    }
    answers = {name: attempt(name, message) for name, message in messages.items()}
    assert answers == DEFERRED, answers

    filter_stopped()
    for name, message in messages.items():  # the sender's retries, until one is accepted
        clients.wait_for(
            lambda name=name, message=message: attempt(name, message)[0] == 250, timeout=60, what=f"{name} accepted"
        )

    inbox = imaps(bob)
    for name, message in messages.items():
        assert copies(inbox, message["Message-ID"]) == 1, name


# --- malware (C4): ClamAV on the project's own signatures -----------------------------------------

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
VIRUS_FOUND = (554, '5.7.1 clamav: virus found: "Govmail.Test.EICAR-HDB.UNOFFICIAL"')


def _zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def _with_eicar(kind: str, sender: str, recipient: str):
    message = make_message(sender, recipient, f"Tài liệu ({kind})", "Gửi anh chị tài liệu đính kèm.\n")
    if kind == "bare":
        message.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="eicar.txt")
    elif kind == "zipped":
        message.add_attachment(
            _zipped("eicar.txt", EICAR), maintype="application", subtype="zip", filename="tai-lieu.zip"
        )
    else:  # among other parts
        message.add_attachment(
            b"%PDF-1.4\n%\xe2\xe3\n1 0 obj <<>> endobj\n",
            maintype="application",
            subtype="pdf",
            filename="cong-van.pdf",
        )
        message.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="phu-luc.txt")
        message.add_attachment("Bảng kê".encode(), maintype="text", subtype="plain", filename="bang-ke.txt")
    return message


@pytest.mark.parametrize("kind", ["bare", "zipped", "among-other-parts"])
def test_eicar_is_refused_at_the_end_of_data_on_the_mx(smtp, bob, kind):
    smtp.ehlo("mx.example.org")
    assert send(smtp, OUTSIDER, bob["address"], _with_eicar(kind, OUTSIDER, bob["address"])) == VIRUS_FOUND


def test_a_zipped_eicar_is_refused_from_an_authenticated_user(submission, alice, bob):
    submission.login(alice["address"], alice["password"])
    message = _with_eicar("zipped", alice["address"], bob["address"])
    assert send(submission, alice["address"], bob["address"], message) == VIRUS_FOUND


@pytest.fixture
def clamd_stopped(mail_host):
    """clamd (and its socket, which would start it again) stopped; ``restart()`` brings it back."""
    assert mail_host.run("systemctl stop clamav-daemon.socket clamav-daemon.service").rc == 0

    def restart():
        assert mail_host.run("systemctl start clamav-daemon.socket clamav-daemon.service").rc == 0

    yield restart
    mail_host.run("systemctl start clamav-daemon.socket clamav-daemon.service")


def test_a_stopped_virus_scanner_defers_mail_and_the_retry_is_delivered_once(
    clamd_stopped, smtp, address, hostname, port, imaps, bob
):
    smtp.ehlo("mx.example.org")
    # new content: Rspamd keeps clamd's verdict on content it has seen (in Redis, by digest)
    message = make_message(OUTSIDER, bob["address"], "Công văn khẩn", f"Nội dung công văn {uuid.uuid4()}.\n")
    assert send(smtp, OUTSIDER, bob["address"], message) == (451, "4.7.1 Virus scanner unavailable, try again later")

    clamd_stopped()

    def retry():
        client = clients.SMTP(address, hostname, port("smtp"))
        try:
            client.ehlo("mx.example.org")
            return send(client, OUTSIDER, bob["address"], message)[0] == 250
        finally:
            client.close()

    clients.wait_for(retry, timeout=60, what="the retry accepted")
    assert copies(imaps(bob), message["Message-ID"]) == 1


# --- banned attachments (C1) and encrypted archives (C2) ------------------------------------------

# The shipped list (roles/filter/defaults/main.yml; the lab's inventory keeps it).
BANNED = yaml.safe_load((PROJECT_DIR / "roles/filter/defaults/main.yml").read_text())["filter_banned_extensions"]
NOT_ALLOWED = "5.7.1 Attachment type not allowed (tep dinh kem bi cam): "
PAYLOAD = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 4


def _attached(sender: str, recipient: str, filename: str, data: bytes, maintype: str, subtype: str):
    message = make_message(sender, recipient, "Hồ sơ đính kèm", "Gửi anh chị hồ sơ.\n")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


@pytest.mark.parametrize("extension", BANNED)
def test_a_banned_attachment_posing_as_a_pdf_is_refused_on_the_mx_naming_the_file(smtp, bob, extension):
    smtp.ehlo("mx.example.org")
    name = f"bao-cao.pdf.{extension}"
    message = _attached(OUTSIDER, bob["address"], name, PAYLOAD, "application", "pdf")
    assert send(smtp, OUTSIDER, bob["address"], message) == (554, NOT_ALLOWED + name)


@pytest.mark.parametrize("extension", BANNED)
def test_a_banned_attachment_is_refused_on_submission_naming_the_file(submission, alice, bob, extension):
    submission.login(alice["address"], alice["password"])
    name = f"Hoa-don.{extension.upper()}"
    message = _attached(alice["address"], bob["address"], name, PAYLOAD, "application", "octet-stream")
    assert send(submission, alice["address"], bob["address"], message) == (554, NOT_ALLOWED + name)


@pytest.mark.parametrize("extension", BANNED)
def test_a_banned_file_inside_a_zip_is_refused_naming_the_archive_and_the_file(smtp, bob, extension):
    smtp.ehlo("mx.example.org")
    inner = f"cai-dat.{extension}"
    archive = _zipped(inner, PAYLOAD)
    message = _attached(OUTSIDER, bob["address"], "tai-lieu.zip", archive, "application", "zip")
    assert send(smtp, OUTSIDER, bob["address"], message) == (554, NOT_ALLOWED + f"tai-lieu.zip/{inner}")


# Deeper than Rspamd looks (it lists the members of an attachment itself, and not of a tar): the
# role's Lua reads zip, tar and gzip inside one another down to 4 levels and names the path; below
# that, clamd unpacks every level (zip, rar, 7z, tar, cab, cpio... down to MaxRecursion) and the
# role's container signatures (govmail-banned.cdb) name the banned extension it found.
def _tarred(name: str, data: bytes, mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        member = tarfile.TarInfo(name)
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


NESTED = {  # case -> (attachment name, its bytes, MIME subtype, the path the refusal names)
    "zip in a zip": lambda inner: (
        "tai-lieu.zip", _zipped("ho-so.zip", _zipped(inner, PAYLOAD)), "zip", f"tai-lieu.zip/ho-so.zip/{inner}"),
    "zip in a zip in a zip": lambda inner: (
        "tai-lieu.zip", _zipped("ho-so.zip", _zipped("phu-luc.zip", _zipped(inner, PAYLOAD))), "zip",
        f"tai-lieu.zip/ho-so.zip/phu-luc.zip/{inner}"),
    "tar": lambda inner: ("tai-lieu.tar", _tarred(inner, PAYLOAD), "x-tar", f"tai-lieu.tar/{inner}"),
    "tar with a long path (pax)": lambda inner: (
        "tai-lieu.tar", _tarred(f"thu-muc/{'ho-so-' * 20}/{inner}", PAYLOAD), "x-tar",
        f"tai-lieu.tar/thu-muc/{'ho-so-' * 20}/{inner}"),
    "tar.gz": lambda inner: ("tai-lieu.tar.gz", _tarred(inner, PAYLOAD, "w:gz"), "gzip", f"tai-lieu.tar.gz/{inner}"),
    "zip in a tar.gz": lambda inner: (
        "tai-lieu.tgz", _tarred("ho-so.zip", _zipped(inner, PAYLOAD), "w:gz"), "gzip",
        f"tai-lieu.tgz/ho-so.zip/{inner}"),
    "tar in a zip": lambda inner: (
        "tai-lieu.zip", _zipped("ho-so.tar", _tarred(inner, PAYLOAD)), "zip", f"tai-lieu.zip/ho-so.tar/{inner}"),
}  # fmt: skip


def banned_inside(extension: str) -> tuple[int, str]:
    """The refusal of a banned member found by clamd: its extension, lower case (roles/filter vars)."""
    return 554, f'5.7.1 clamav: virus found: "Govmail.Banned.{extension.lower()}.UNOFFICIAL"'


@pytest.mark.parametrize("case", NESTED.values(), ids=list(NESTED))
def test_a_banned_file_deeper_in_archives_is_refused_naming_its_path(smtp, bob, case):
    smtp.ehlo("mx.example.org")
    filename, archive, subtype, path = case("cai-dat.exe")
    message = _attached(OUTSIDER, bob["address"], filename, archive, "application", subtype)
    assert send(smtp, OUTSIDER, bob["address"], message) == (554, NOT_ALLOWED + path)


@pytest.mark.parametrize("extension", BANNED)
def test_each_banned_extension_in_a_zip_in_a_zip_is_refused_on_submission(submission, alice, bob, extension):
    submission.login(alice["address"], alice["password"])
    filename, archive, subtype, path = NESTED["zip in a zip"](f"Cai-Dat.{extension.upper()}")
    message = _attached(alice["address"], bob["address"], filename, archive, "application", subtype)
    assert send(submission, alice["address"], bob["address"], message) == (554, NOT_ALLOWED + path)


def _sevenzipped(name: str, data: bytes, *, header_compressed: bool) -> bytes:
    """A 7z of one member, built with Debian's 7z (p7zip-full, scripts/setup.sh), with its
    header compressed (7z's default) or not (``-mhc=off``)."""
    with tempfile.TemporaryDirectory() as work:
        (pathlib.Path(work) / name).write_bytes(data)
        options = [] if header_compressed else ["-mhc=off"]
        subprocess.run(["7z", "a", "-t7z", *options, "out.7z", name], cwd=work, check=True, capture_output=True)
        return (pathlib.Path(work) / "out.7z").read_bytes()


@pytest.mark.parametrize("header_compressed", [True, False], ids=["7z-default", "header-uncompressed"])
def test_a_banned_file_in_a_7z_is_refused_naming_the_archive_and_the_file(smtp, bob, header_compressed):
    smtp.ehlo("mx.example.org")
    archive = _sevenzipped("cai-dat.exe", PAYLOAD, header_compressed=header_compressed)
    message = _attached(OUTSIDER, bob["address"], "tai-lieu.7z", archive, "application", "x-7z-compressed")
    assert send(smtp, OUTSIDER, bob["address"], message) == (554, NOT_ALLOWED + "tai-lieu.7z/cai-dat.exe")


def test_a_banned_file_five_archives_deep_is_refused_by_the_virus_scanner_naming_its_type(smtp, bob):
    smtp.ehlo("mx.example.org")
    archive = _zipped("cai-dat.exe", PAYLOAD)
    for name in ("d.zip", "c.zip", "b.zip", "a.zip"):  # below the Lua reader's 4 levels
        archive = _zipped(name, archive)
    message = _attached(OUTSIDER, bob["address"], "tai-lieu.zip", archive, "application", "zip")
    assert send(smtp, OUTSIDER, bob["address"], message) == banned_inside("exe")


def test_nested_archives_of_ordinary_files_are_delivered(smtp, imaps, bob):
    smtp.ehlo("mx.example.org")
    inner = _zipped("so-lieu.csv", "Đơn vị,Số\nSở KHCN,12\n".encode())
    archive = _tarred("bao-cao-quy.zip", inner, "w:gz")
    message = _attached(OUTSIDER, bob["address"], "ho-so.tar.gz", archive, "application", "gzip")
    assert send(smtp, OUTSIDER, bob["address"], message)[0] == 250
    inbox = imaps(bob)
    stored = parse(clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="the message in INBOX"))
    assert [part.get_content() for part in stored.iter_attachments()] == [archive]


def test_ordinary_attachments_are_delivered_untouched(submission, imaps, alice, bob):
    submission.login(alice["address"], alice["password"])
    message = make_message(alice["address"], bob["address"], "Báo cáo quý", "Gửi anh báo cáo.\n")
    pdf = b"%PDF-1.4\n%\xe2\xe3\n1 0 obj <<>> endobj\n"
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="bao-cao.pdf")
    message.add_attachment(_zipped("so-lieu.csv", "Đơn vị,Số\nSở KHCN,12\n".encode()), maintype="application",
                           subtype="zip", filename="so-lieu.zip")  # fmt: skip
    assert send(submission, alice["address"], bob["address"], message)[0] == 250
    inbox = imaps(bob)
    stored = parse(clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="the message in INBOX"))
    names = [part.get_filename() for part in stored.iter_attachments()]
    assert names == ["bao-cao.pdf", "so-lieu.zip"]
    assert stored["X-Govmail-Warning"] is None


def _encrypted_zip(name: str, data: bytes) -> bytes:
    """A zip whose member is marked encrypted (general purpose bit 0, APPNOTE 4.4.4), as
    ``zip -e`` writes it; its content stays readable, Rspamd goes by the flag."""
    archive = bytearray(_zipped(name, data))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = archive.find(signature)
        archive[at + offset] |= 0x01
    return bytes(archive)


def test_an_encrypted_zip_is_delivered_with_a_warning_and_a_vietnamese_subject_tag(smtp, imaps, bob):
    smtp.ehlo("mx.example.org")
    archive = _encrypted_zip("hop-dong.docx", b"PK-not-really-a-docx" * 20)
    message = _attached(OUTSIDER, bob["address"], "hop-dong.zip", archive, "application", "zip")
    assert send(smtp, OUTSIDER, bob["address"], message)[0] == 250
    inbox = imaps(bob)
    stored = parse(clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="the message in INBOX"))
    assert stored["X-Govmail-Warning"] == "encrypted archive not inspected: hop-dong.zip"
    assert stored["Subject"] == "[Tệp nén có mật khẩu - chưa được kiểm tra virus] Hồ sơ đính kèm"
