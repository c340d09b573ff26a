"""emotive.codecs"""
