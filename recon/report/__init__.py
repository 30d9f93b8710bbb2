"""`recon report`: trends over the stored results, as CSV tables and one self-contained HTML page.

trend.py computes the tables, charts.py draws the two charts, page.py lays out the HTML page and
folder.py reads the stored results and writes the report folder.
"""
