"""A correct answer to the assignment's data-migration question, as migration file text.

Shared by tests/test_judges.py and bench/bench_isolation.py. It lives with the test fixtures,
not in miglab: learners get that package, and this is a solution."""

GOOD = """
from django.db import migrations
from django.utils.text import slugify


def forwards(apps, schema_editor):
    Book = apps.get_model("library", "Book")
    for book in Book.objects.all():
        book.slug = slugify(book.title)
        book.save()


def backwards(apps, schema_editor):
    apps.get_model("library", "Book").objects.update(slug="")


class Migration(migrations.Migration):
    dependencies = [("library", "0002_book_slug")]
    operations = [migrations.RunPython(forwards, backwards)]
"""
